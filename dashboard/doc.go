// Package dashboard is pier's web UI, served by every server at the root
// of its API port. The page (plain HTML, CSS and a small script, embedded
// in the binary) does everything through the public controller API, the
// one the CLI uses: this package adds no data endpoints, only sign-in.
// A browser signs in with an API key, or with a one-time URL that
// `pier dashboard` asks for; it then holds an HttpOnly, Secure, SameSite
// session cookie, and the dashboard lends the session's key to the page's
// API requests, each change checked for the session's CSRF token first.
// Sessions live in etcd (so any server honours them), the key in them
// sealed with a secret only the cookie carries.
package dashboard
