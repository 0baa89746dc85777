package artifact

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// MaxImageLayers bounds an image's layers: each is a lower directory of
// the job's overlay, whose mount options fit in one page.
const MaxImageLayers = 64

// ErrImage marks an image that cannot run here (no layers, too many, a
// layer format pier does not unpack).
var ErrImage = errors.New("artifact: unusable image")

// ImageCache pulls OCI images and keeps their layers unpacked, one
// directory per compressed layer digest, <Dir>/<sha256 hex>, shared by
// every image that has the layer: a second image on the same base
// downloads only what it adds. A layer directory appears only by the
// rename of a complete, digest-verified, checked extraction, in the form
// the runtime's overlay wants (whiteouts as 0:0 character devices, opaque
// directories marked with the trusted.overlay.opaque xattr).
//
// Layers are unpacked with Extract's rules (no escapes, no devices, no
// setuid bits, size caps), after two rewrites of the OCI form: absolute
// symlink targets are made relative to the layer's root, which is where
// the container resolves them anyway, and whiteout files become what
// overlayfs understands.
type ImageCache struct {
	Dir string
	// Transport reaches the registries (for pier's own, with the host's
	// cluster certificate).
	Transport http.RoundTripper
	// Limits bound each layer's extraction.
	Limits Limits
	Log    *slog.Logger

	mu       sync.Mutex
	inflight map[string]*flight
	pulls    int // pulls going on, which GC waits for
}

// Image is a pulled image, ready to run.
type Image struct {
	Digest string    // the manifest's sha256 hex
	Layers []string  // unpacked layer directories, lowest first
	Config v1.Config // entrypoint, cmd, env, working dir, user, ports
	// Fetched are the digests of the layers this pull downloaded; the
	// others were in the cache already.
	Fetched []string
}

// Pull makes the image ref (pinned by digest: REPO@sha256:HEX, and HEX
// must be digest) ready to run.
func (c *ImageCache) Pull(ctx context.Context, ref, digest string) (*Image, error) {
	if !ValidDigest(digest) {
		return nil, ErrBadDigest
	}
	r, err := name.NewDigest(ref)
	if err != nil {
		return nil, fmt.Errorf("%w: reference %q: %v", ErrImage, ref, err)
	}
	if r.DigestStr() != "sha256:"+digest {
		return nil, fmt.Errorf("%w: reference %s does not name sha256:%s", ErrDigestMismatch, ref, digest)
	}
	c.mu.Lock()
	c.pulls++
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.pulls--
		c.mu.Unlock()
	}()
	if img, ok := c.cached(digest); ok {
		return img, nil
	}
	opts := []remote.Option{remote.WithContext(ctx)}
	if c.Transport != nil {
		opts = append(opts, remote.WithTransport(c.Transport))
	}
	// remote.Image checks the manifest against the reference's digest,
	// and the config and each layer against the manifest's as they are
	// read.
	img, err := remote.Image(r, opts...)
	if err != nil {
		return nil, fmt.Errorf("artifact: pull %s: %w", ref, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("artifact: image config of %s: %w", ref, err)
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("artifact: layers of %s: %w", ref, err)
	}
	if len(layers) == 0 || len(layers) > MaxImageLayers {
		return nil, fmt.Errorf("%w: %d layers (1 to %d)", ErrImage, len(layers), MaxImageLayers)
	}
	if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("artifact: %w", err)
	}
	out := &Image{Digest: digest, Config: cf.Config}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return nil, fmt.Errorf("artifact: layer digest: %w", err)
		}
		if d.Algorithm != "sha256" || !ValidDigest(d.Hex) {
			return nil, fmt.Errorf("%w: layer digest %s", ErrImage, d)
		}
		fetched, err := c.layer(ctx, l, d.Hex)
		if err != nil {
			return nil, fmt.Errorf("layer sha256:%s of %s: %w", d.Hex, ref, err)
		}
		if fetched {
			out.Fetched = append(out.Fetched, d.Hex)
		}
		out.Layers = append(out.Layers, filepath.Join(c.Dir, d.Hex))
	}
	c.remember(out)
	return out, nil
}

// pulled is what the cache remembers of a pulled image, in
// <Dir>/images/<digest>.json: enough to start it again without asking
// the registry, while its layers are still there.
type pulled struct {
	Layers []string  `json:"layers"` // layer digests, lowest first
	Config v1.Config `json:"config"`
}

func (c *ImageCache) imagePath(digest string) string {
	return filepath.Join(c.Dir, "images", digest+".json")
}

func (c *ImageCache) cached(digest string) (*Image, bool) {
	b, err := os.ReadFile(c.imagePath(digest))
	if err != nil {
		return nil, false
	}
	var p pulled
	if json.Unmarshal(b, &p) != nil || len(p.Layers) == 0 {
		return nil, false
	}
	img := &Image{Digest: digest, Config: p.Config}
	for _, l := range p.Layers {
		dir := filepath.Join(c.Dir, l)
		if !ValidDigest(l) {
			return nil, false
		}
		if ok, _ := isDir(dir); !ok {
			return nil, false
		}
		img.Layers = append(img.Layers, dir)
	}
	return img, true
}

// remember records a pulled image; best effort: without the record the
// next start asks the registry again.
func (c *ImageCache) remember(img *Image) {
	p := pulled{Config: img.Config}
	for _, l := range img.Layers {
		p.Layers = append(p.Layers, filepath.Base(l))
	}
	b, err := json.Marshal(p)
	if err != nil {
		return
	}
	dir := filepath.Dir(c.imagePath(img.Digest))
	if os.MkdirAll(dir, 0o700) != nil {
		return
	}
	tmp, err := os.CreateTemp(dir, ".image-*")
	if err != nil {
		return
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil || tmp.Close() != nil {
		tmp.Close()
		return
	}
	os.Rename(tmp.Name(), c.imagePath(img.Digest))
}

// layer makes sure one layer is unpacked, downloading it at most once
// however many pulls want it at the same time.
func (c *ImageCache) layer(ctx context.Context, l v1.Layer, digest string) (bool, error) {
	dir := filepath.Join(c.Dir, digest)
	for {
		if ok, err := isDir(dir); err != nil || ok {
			return false, err
		}
		c.mu.Lock()
		f, waiting := c.inflight[digest]
		if !waiting {
			if c.inflight == nil {
				c.inflight = map[string]*flight{}
			}
			f = &flight{done: make(chan struct{})}
			c.inflight[digest] = f
		}
		c.mu.Unlock()
		if waiting {
			select {
			case <-f.done:
				if f.err != nil {
					return false, f.err
				}
				continue
			case <-ctx.Done():
				return false, ctx.Err()
			}
		}
		f.err = c.unpack(l, digest, dir)
		c.mu.Lock()
		delete(c.inflight, digest)
		c.mu.Unlock()
		close(f.done)
		if f.err == nil && c.Log != nil {
			c.Log.Info("image layer unpacked", "sha256", digest)
		}
		return f.err == nil, f.err
	}
}

func (c *ImageCache) unpack(l v1.Layer, digest, dir string) error {
	mt, err := l.MediaType()
	if err != nil {
		return err
	}
	switch mt {
	case types.OCILayer, types.DockerLayer, types.OCIUncompressedLayer, types.DockerUncompressedLayer:
	default:
		return fmt.Errorf("%w: layer media type %s (pier unpacks tar and tar+gzip layers)", ErrImage, mt)
	}
	lim := c.Limits.withDefaults()
	if size, err := l.Size(); err == nil && size > lim.MaxArchiveSize {
		return overLimit("sha256:"+digest, "layer of %d bytes is over the limit of %d", size, lim.MaxArchiveSize)
	}
	rc, err := l.Compressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	var b [8]byte
	rand.Read(b[:])
	tmp := filepath.Join(c.Dir, "."+digest+"-"+hex.EncodeToString(b[:]))
	defer os.RemoveAll(tmp)

	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(rewriteLayer(rc, pw, lim)) }()
	err = Extract(pr, tmp, c.Limits)
	pr.CloseWithError(errors.New("extraction ended"))
	if err != nil {
		return err
	}
	// Read to the end, which is where the digest is checked: nothing
	// unverified is ever renamed into the cache.
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return fmt.Errorf("%w: %v", ErrDigestMismatch, err)
	}
	if err := rc.Close(); err != nil {
		return fmt.Errorf("%w: %v", ErrDigestMismatch, err)
	}
	if err := applyWhiteouts(tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		if ok, _ := isDir(dir); ok {
			return nil // another process of ours got there first
		}
		return fmt.Errorf("artifact: %w", err)
	}
	return nil
}

// rewriteLayer copies a layer's tar stream (gzipped or not) to w as a
// plain tar, with absolute symlink targets made relative to the layer's
// root. Everything else Extract checks on the other side.
func rewriteLayer(r io.Reader, w io.Writer, lim Limits) error {
	br := bufio.NewReader(r)
	var stream io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("artifact: read layer: %w", err)
		}
		stream = zr
	}
	// The same byte cap as Extract's, here too: headers this reader
	// consumes never reach Extract's count.
	stream = &cappedReader{r: stream, left: lim.MaxArchiveSize, max: lim.MaxArchiveSize}
	tr := tar.NewReader(stream)
	tw := tar.NewWriter(w)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil && !(errors.Is(err, tar.ErrInsecurePath) && hdr != nil) {
			return readError(err)
		}
		if hdr.Typeflag == tar.TypeSymlink && path.IsAbs(hdr.Linkname) {
			hdr.Linkname = relativeTarget(hdr.Name, hdr.Linkname)
		}
		// PAX records would carry the original names along.
		hdr.PAXRecords = nil
		hdr.Format = tar.FormatUnknown
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if hdr.Typeflag == tar.TypeReg {
			if _, err := io.Copy(tw, tr); err != nil {
				return readError(err)
			}
		}
	}
	return tw.Close()
}

// relativeTarget is an absolute symlink target as seen from the link's
// directory, climbing to the layer's root first: what the container
// would resolve it to.
func relativeTarget(link, target string) string {
	link = strings.TrimPrefix(path.Clean("/"+link), "/")
	target = strings.TrimPrefix(path.Clean(target), "/")
	depth := 0
	if dir := path.Dir(link); dir != "." {
		depth = strings.Count(dir, "/") + 1
	}
	rel := strings.Repeat("../", depth) + target
	if rel == "" {
		return "."
	}
	return strings.TrimSuffix(rel, "/")
}

// applyWhiteouts turns the OCI whiteout files of an unpacked layer into
// overlayfs's: ".wh.NAME" becomes a 0:0 character device NAME, and
// ".wh..wh..opq" marks its directory opaque.
func applyWhiteouts(root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		base := d.Name()
		if !strings.HasPrefix(base, ".wh.") || p == root {
			return nil
		}
		if d.IsDir() {
			return unsafeEntry(strings.TrimPrefix(p, root+"/"), "whiteout that is a directory")
		}
		if err := os.Remove(p); err != nil {
			return err
		}
		parent := filepath.Dir(p)
		if base == ".wh..wh..opq" {
			return setOpaque(parent)
		}
		target := strings.TrimPrefix(base, ".wh.")
		if target == "" || target == "." || target == ".." {
			return unsafeEntry(strings.TrimPrefix(p, root+"/"), "bad whiteout")
		}
		return whiteout(filepath.Join(parent, target))
	})
}
