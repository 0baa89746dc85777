package artifact

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"golang.org/x/sys/unix"
)

type entry struct {
	name, body, link string
	typ              byte
	mode             int64
}

func testLayer(t *testing.T, entries ...entry) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link, Size: int64(len(e.body)), ModTime: time.Unix(1700000000, 0)}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(e.body))
	}
	tw.Close()
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// pushTest serves an in-memory registry and pushes an image of layers to
// it, returning the pinned reference and the manifest digest.
func pushTest(t *testing.T, srv *httptest.Server, layers ...v1.Layer) (string, string) {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	img, err = mutate.Config(img, v1.Config{Entrypoint: []string{"/bin/app"}, Env: []string{"A=1"}, WorkingDir: "/w"})
	if err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	ref := strings.TrimPrefix(srv.URL, "http://") + "/test/img@" + d.String()
	r, err := name.NewDigest(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	return ref, d.Hex
}

func newRegistry(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return srv
}

// TestImagePullLayers pulls an image of two layers and checks the
// overlay form: an absolute symlink made relative, a whiteout as a 0:0
// character device, an opaque directory, setuid dropped, the config
// kept; and a second image sharing the base layer unpacks only its own.
func TestImagePullLayers(t *testing.T) {
	srv := newRegistry(t)
	base := testLayer(t,
		entry{name: "bin/", typ: tar.TypeDir, mode: 0o755},
		entry{name: "bin/app", body: "#!", mode: 0o4755},
		entry{name: "etc/", typ: tar.TypeDir, mode: 0o755},
		entry{name: "etc/gone", body: "x"},
		entry{name: "etc/link", typ: tar.TypeSymlink, link: "/bin/../bin/app"},
		entry{name: "root-link", typ: tar.TypeSymlink, link: "/"},
		entry{name: "var/", typ: tar.TypeDir, mode: 0o755},
		entry{name: "var/old", body: "x"},
	)
	top := testLayer(t,
		entry{name: "etc/", typ: tar.TypeDir, mode: 0o755},
		entry{name: "etc/.wh.gone"},
		entry{name: "var/", typ: tar.TypeDir, mode: 0o755},
		entry{name: "var/.wh..wh..opq"},
		entry{name: "var/new", body: "y"},
	)
	ref, digest := pushTest(t, srv, base, top)
	c := &ImageCache{Dir: filepath.Join(t.TempDir(), "layers")}
	img, err := c.Pull(context.Background(), ref, digest)
	if err != nil {
		t.Fatal(err)
	}
	if len(img.Layers) != 2 || len(img.Fetched) != 2 {
		t.Fatalf("layers %v, fetched %v", img.Layers, img.Fetched)
	}
	if img.Config.WorkingDir != "/w" || img.Config.Entrypoint[0] != "/bin/app" || img.Config.Env[0] != "A=1" {
		t.Errorf("config %+v", img.Config)
	}
	lo, hi := img.Layers[0], img.Layers[1]
	if fi, err := os.Stat(filepath.Join(lo, "bin/app")); err != nil || fi.Mode()&os.ModeSetuid != 0 {
		t.Errorf("bin/app: %v %v (setuid must be dropped)", fi.Mode(), err)
	}
	for link, want := range map[string]string{"etc/link": "../bin/app", "root-link": "."} {
		if got, err := os.Readlink(filepath.Join(lo, link)); err != nil || got != want {
			t.Errorf("%s -> %q (%v), want %q", link, got, err, want)
		}
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(hi, "etc/gone"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Errorf("etc/gone is not a whiteout: %v %o", err, st.Mode)
	}
	if _, err := os.Lstat(filepath.Join(hi, "etc/.wh.gone")); err == nil {
		t.Error("the whiteout file is still there")
	}
	buf := make([]byte, 8)
	if n, err := unix.Getxattr(filepath.Join(hi, "var"), "trusted.overlay.opaque", buf); err != nil || string(buf[:n]) != "y" {
		t.Errorf("var is not opaque: %v", err)
	}

	// Another image on the same base fetches only its top layer.
	other := testLayer(t, entry{name: "other", body: "z"})
	ref2, digest2 := pushTest(t, srv, base, other)
	img2, err := c.Pull(context.Background(), ref2, digest2)
	if err != nil {
		t.Fatal(err)
	}
	od, _ := other.Digest()
	if len(img2.Fetched) != 1 || img2.Fetched[0] != od.Hex || img2.Layers[0] != lo {
		t.Errorf("second image fetched %v, layers %v", img2.Fetched, img2.Layers)
	}

	// A pulled image starts again without its registry.
	srv.Close()
	again, err := c.Pull(context.Background(), ref2, digest2)
	if err != nil {
		t.Fatalf("pull with the registry gone: %v", err)
	}
	if len(again.Fetched) != 0 || len(again.Layers) != 2 || again.Config.WorkingDir != "/w" {
		t.Errorf("cached pull: %+v", again)
	}
}

// TestImageRefusesUnsafeLayers: each layer is refused with ErrUnsafe
// (or ErrImage), and leaves nothing in the cache or beside it.
func TestImageRefusesUnsafeLayers(t *testing.T) {
	srv := newRegistry(t)
	for name, l := range map[string]v1.Layer{
		"dotdot":         testLayer(t, entry{name: "../escape", body: "x"}),
		"absolute":       testLayer(t, entry{name: "/etc/escape", body: "x"}),
		"device":         testLayer(t, entry{name: "dev/sda", typ: tar.TypeBlock}),
		"char device":    testLayer(t, entry{name: "null", typ: tar.TypeChar}),
		"under symlink":  testLayer(t, entry{name: "d", typ: tar.TypeSymlink, link: "/etc"}, entry{name: "d/passwd", body: "x"}),
		"relative climb": testLayer(t, entry{name: "a/l", typ: tar.TypeSymlink, link: "../../x"}),
		"dir whiteout":   testLayer(t, entry{name: ".wh.d/", typ: tar.TypeDir, mode: 0o755}),
	} {
		t.Run(name, func(t *testing.T) {
			ref, digest := pushTest(t, srv, l)
			parent := t.TempDir()
			c := &ImageCache{Dir: filepath.Join(parent, "layers")}
			_, err := c.Pull(context.Background(), ref, digest)
			if !errors.Is(err, ErrUnsafe) {
				t.Fatalf("err = %v, want ErrUnsafe", err)
			}
			ents, _ := os.ReadDir(c.Dir)
			top, _ := os.ReadDir(parent)
			if len(ents) != 0 || len(top) != 1 {
				t.Errorf("left behind: %v in the cache, %v beside it", ents, top)
			}
		})
	}
}

// TestImageWrongDigest: a reference whose digest is not the one the
// release pinned is refused before anything is downloaded.
func TestImageWrongDigest(t *testing.T) {
	srv := newRegistry(t)
	ref, _ := pushTest(t, srv, testLayer(t, entry{name: "f", body: "x"}))
	c := &ImageCache{Dir: t.TempDir()}
	if _, err := c.Pull(context.Background(), ref, strings.Repeat("a", 64)); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("err = %v", err)
	}
}

// TestImageGC: collecting keeps the wanted images and the layers they
// use, shared ones included, and removes the rest.
func TestImageGC(t *testing.T) {
	srv := newRegistry(t)
	base := testLayer(t, entry{name: "base", body: "b"})
	one, two := testLayer(t, entry{name: "one", body: "1"}), testLayer(t, entry{name: "two", body: "2"})
	ref1, d1 := pushTest(t, srv, base, one)
	ref2, d2 := pushTest(t, srv, base, two)
	c := &ImageCache{Dir: t.TempDir()}
	for ref, d := range map[string]string{ref1: d1, ref2: d2} {
		if _, err := c.Pull(context.Background(), ref, d); err != nil {
			t.Fatal(err)
		}
	}
	os.Mkdir(filepath.Join(c.Dir, ".leftover-unpack"), 0o700)
	removed, err := c.GC(func(d string) bool { return d == d2 })
	if err != nil {
		t.Fatal(err)
	}
	bd, _ := base.Digest()
	od, _ := one.Digest()
	td, _ := two.Digest()
	if strings.Join(removed, ",") != d1+","+od.Hex && strings.Join(removed, ",") != od.Hex+","+d1 {
		t.Errorf("removed %v, want image %s and its own layer %s", removed, d1, od.Hex)
	}
	for _, l := range []string{bd.Hex, td.Hex} {
		if _, err := os.Stat(filepath.Join(c.Dir, l)); err != nil {
			t.Errorf("layer %s of the kept image: %v", l, err)
		}
	}
	if _, err := os.Stat(filepath.Join(c.Dir, ".leftover-unpack")); err == nil {
		t.Error("a leftover unpack survived")
	}
	if _, err := c.GC(func(string) bool { return false }); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(c.Dir); len(ents) != 1 || ents[0].Name() != "images" {
		t.Errorf("after collecting everything: %v", ents)
	}
}
