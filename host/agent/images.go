package agent

import (
	"context"
	"crypto/x509"
	"debug/elf"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/discovery"
	"github.com/pierpaas/pier/host/artifact"
	"github.com/pierpaas/pier/internal/pki"
	"github.com/pierpaas/pier/runtime"
)

// images is the host's image layer cache, made on first use with the
// transport the artifact cache uses (the host's cluster certificate,
// which pier's registry lets in for pulls).
type images struct {
	once  sync.Once
	cache *artifact.ImageCache
	// staticPier says whether the pier binary runs without the host's
	// dynamic loader and libraries, which an image does not have.
	staticPier bool
}

func (a *Agent) imageCache() *artifact.ImageCache {
	im := &a.images
	im.once.Do(func() {
		im.cache = &artifact.ImageCache{
			Dir:       filepath.Join(a.cfg.DataDir, "image-layers"),
			Transport: a.imageTransport(),
			Log:       a.cfg.Log,
		}
		im.staticPier = a.cfg.PierBinary != "" && isStatic(a.cfg.PierBinary)
	})
	return im.cache
}

// imageTransport reaches pier's servers with the host's cluster
// certificate, as artifacts are fetched, and other registries with the
// system's roots as well as the cluster's CA.
func (a *Agent) imageTransport() http.RoundTripper {
	tr, ok := a.artifacts.Client.Transport.(*http.Transport)
	if !ok || tr.TLSClientConfig == nil {
		return a.artifacts.Client.Transport
	}
	pool, err := x509.SystemCertPool()
	ca, rerr := os.ReadFile(filepath.Join(a.Creds.Dir, pki.CACertFile))
	if err != nil || rerr != nil || !pool.AppendCertsFromPEM(ca) {
		return tr
	}
	tr = tr.Clone()
	tr.TLSClientConfig.RootCAs = pool
	return tr
}

// prepareImage pulls a job's image artifact and fills in spec from its
// config: the layers as the root file system, the working directory, and
// the command when the process type gives none. It returns the image's
// environment, which the job's own variables override.
func (a *Agent) prepareImage(ctx context.Context, art *api.Artifact, spec *runtime.Spec) ([]string, int, error) {
	img, err := a.pullImage(ctx, art)
	if err != nil {
		return nil, 0, err
	}
	if len(img.Fetched) > 0 {
		a.cfg.Log.Info("image pulled", "image", art.URI, "layers", len(img.Layers), "fetched", len(img.Fetched))
	}
	spec.RootFS = img.Layers
	spec.AppDir = ""
	if !a.images.staticPier && spec.Init != "" {
		// A dynamically linked pier cannot run in the image's root: the
		// image's command is the container's first process itself, and
		// gets the stop signals directly (as under docker run without
		// --init).
		spec.Init = ""
		spec.Mounts = slices.DeleteFunc(spec.Mounts, func(m runtime.Mount) bool { return m.Destination == api.PierBinary })
	}
	if wd := img.Config.WorkingDir; wd != "" {
		spec.Dir = wd
	}
	if len(spec.Args) == 0 {
		spec.Args = append(slices.Clone(img.Config.Entrypoint), img.Config.Cmd...)
		if len(spec.Args) == 0 {
			return nil, 0, fmt.Errorf("%w: the image has no entrypoint or cmd, and the process type no command", artifact.ErrImage)
		}
	}
	// The image's user is not taken: every job runs as the unprivileged
	// app user, never as root on the host (DESIGN.md).
	return img.Config.Env, exposedPort(img.Config.ExposedPorts), nil
}

// exposedPort is the lowest TCP port the image exposes that a job may
// bind (above 1024: jobs never run as root), 0 if none.
func exposedPort(ports map[string]struct{}) int {
	best := 0
	for p := range ports {
		num, proto, _ := strings.Cut(p, "/")
		n, err := strconv.Atoi(num)
		if err != nil || (proto != "" && proto != "tcp") || n <= 1024 || n > 65535 {
			continue
		}
		if best == 0 || n < best {
			best = n
		}
	}
	return best
}

// useImagePort makes an image's exposed port the job's first port (PORT)
// when the job has a network namespace of its own, where no other job's
// port can be in the way.
func (w *worker) useImagePort(port int) {
	if port == 0 || w.lj.IP == "" || len(w.lj.HostPorts) == 0 || slices.Contains(w.lj.HostPorts[1:], port) {
		return
	}
	w.lj.HostPorts[0] = port
}

// pullImage pulls an image from where its release says, and if that is
// one of pier's servers and it cannot give it, from the others: each
// has a copy of every pushed image.
func (a *Agent) pullImage(ctx context.Context, art *api.Artifact) (*artifact.Image, error) {
	c := a.imageCache()
	img, err := c.Pull(ctx, art.URI, art.SHA256)
	if err == nil || !fetchElsewhere(err) || errors.Is(err, artifact.ErrImage) ||
		errors.Is(err, artifact.ErrDigestMismatch) || ctx.Err() != nil {
		return img, err
	}
	host, rest, ok := strings.Cut(art.URI, "/")
	if !ok {
		return nil, err
	}
	servers, lerr := a.reg.Instances(ctx, api.ServersService)
	if lerr != nil || !slices.ContainsFunc(servers, func(s discovery.Instance) bool { return s.Addr == host }) {
		return nil, err
	}
	for _, s := range servers {
		if s.Addr == host {
			continue
		}
		img, err2 := c.Pull(ctx, s.Addr+"/"+rest, art.SHA256)
		if err2 == nil {
			a.cfg.Log.Info("image pulled from another server", "image", art.URI, "server", s.Addr, "first_err", err)
			return img, nil
		}
	}
	return nil, err
}

// gcImages removes the images no local job uses, and their layers that
// no other image shares.
func (a *Agent) gcImages(inUse map[string]bool) {
	if removed, err := a.imageCache().GC(func(d string) bool { return inUse[d] }); err != nil {
		a.cfg.Log.Warn("image garbage collection failed", "err", err)
	} else if len(removed) > 0 {
		a.cfg.Log.Info("removed unused images and layers", "count", len(removed))
	}
}

// isStatic reports whether the ELF binary at path has no program
// interpreter (no dynamic loader to find in the container).
func isStatic(path string) bool {
	f, err := elf.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false
		}
	}
	return true
}

// mergeEnv is base (KEY=VALUE) with over's variables replacing its own.
func mergeEnv(base, over []string) []string {
	seen := map[string]bool{}
	for _, kv := range over {
		k, _, _ := strings.Cut(kv, "=")
		seen[k] = true
	}
	out := make([]string, 0, len(base)+len(over))
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if !seen[k] {
			out = append(out, kv)
		}
	}
	return append(out, over...)
}
