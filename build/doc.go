// Package build is pier's builder: it turns an app's source tree into a
// slug with Heroku-style buildpacks (bin/detect, bin/compile BUILD_DIR
// CACHE_DIR ENV_DIR, bin/release), honouring .buildpacks, BUILDPACK_URL,
// .slugignore and the Procfile, and it holds what runs inside containers
// from the pier binary: the build job (`pier slugbuild`, RunJob), which
// talks to the controller over the build's own endpoints (api/build.go),
// the slug runner (`pier slugrun`, RunSlug), which sources .profile.d and
// execs a process type's command as Heroku does, and the small static file
// server the built-in static buildpack starts (`pier serve-static`). The
// built-in buildpacks (Go, Node.js, Python, static, Procfile-only) are real
// shell buildpacks embedded in the binary and use the host's toolchains, so
// a build needs nothing from the internet but package registries.
package build
