package cli

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"net/url"
	"slices"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/client"
	"github.com/pierpaas/pier/internal/procfile"
)

// deployImage releases the image ref, pinned to the digest it has now,
// with a web process type that runs the image's entrypoint and cmd.
// An image in the cluster's own registry is read with the cluster's CA
// and API key; any other with the credentials of docker login.
func deployImage(ctx context.Context, c *client.Controller, app, ref string, noWait bool) error {
	r, err := name.ParseReference(ref)
	if err != nil {
		return fmt.Errorf("image %q: %w", ref, err)
	}
	opts, err := registryOptions(ctx, r.Context().RegistryStr())
	if err != nil {
		return err
	}
	// An index (several platforms) is resolved to the image hosts run.
	img, err := remote.Image(r, opts...)
	if err != nil {
		return fmt.Errorf("image %s: %w", ref, err)
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("image %s: config: %w", ref, err)
	}
	args := append(slices.Clone(cf.Config.Entrypoint), cf.Config.Cmd...)
	if len(args) == 0 {
		return fmt.Errorf("image %s has no entrypoint or cmd: nothing to run", ref)
	}
	pinned := r.Context().Name() + "@" + digest.String()
	progress("-----> %s is %s", ref, pinned)
	procs := procfile.ProcessTypes(app, procfile.Procfile{procfile.WebProcess: "x"})
	web := procs[procfile.WebProcess]
	web.Args = args
	procs[procfile.WebProcess] = web
	res, err := c.CreateRelease(ctx, app, api.CreateReleaseRequest{
		Artifact:  &api.Artifact{Type: api.ArtifactImage, URI: pinned, SHA256: digest.Hex},
		Processes: procs,
	})
	if err != nil {
		return err
	}
	return announceRelease(ctx, c, res, noWait)
}

// registryOptions are how the CLI reaches a registry: the cluster's
// own (one of its servers) with its CA and API key, any other with
// the default keychain.
func registryOptions(ctx context.Context, registry string) ([]remote.Option, error) {
	opts := []remote.Option{remote.WithContext(ctx)}
	cl, err := currentCluster()
	if err != nil {
		return nil, err
	}
	own := false
	for _, s := range append([]string{cl.URL}, cl.Servers...) {
		if u, err := url.Parse(s); err == nil && u.Host == registry {
			own = true
		}
	}
	if !own {
		return append(opts, remote.WithAuthFromKeychain(authn.DefaultKeychain)), nil
	}
	tlsCfg, err := cl.TLSConfig()
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsCfg
	if tr.TLSClientConfig == nil {
		tr.TLSClientConfig = &tls.Config{}
	}
	return append(opts, remote.WithTransport(tr),
		remote.WithAuth(&authn.Basic{Username: "pier", Password: cl.Key})), nil
}
