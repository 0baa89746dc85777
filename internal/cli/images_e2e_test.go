package cli_test

import (
	"archive/tar"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/pierpaas/pier/api"
)

// imageServer is the app of the image tests: it answers with what shows
// the image's config and layers were honoured.
const imageServer = `package main

import (
	"fmt"
	"net/http"
	"os"
	"strings"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		motd, _ := os.ReadFile("/etc/motd")
		_, err := os.Stat("/etc/extra")
		wd, _ := os.Getwd()
		fmt.Fprintf(w, "%s|%s|extra=%v|uid=%d|wd=%s|port=%s", os.Getenv("GREETING"), strings.TrimSpace(string(motd)), err == nil, os.Getuid(), wd, os.Getenv("PORT"))
	})
	if err := http.ListenAndServe(":"+os.Getenv("PORT"), nil); err != nil {
		panic(err)
	}
}
`

// tarEntry is one entry of a hand-made layer.
type tarEntry struct {
	name, body, link string
	typ              byte
	mode             int64
}

func layer(t *testing.T, entries ...tarEntry) v1.Layer {
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
		if h.Size > 0 {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func image(t *testing.T, cfg v1.Config, layers ...v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	if img, err = mutate.Config(img, cfg); err != nil {
		t.Fatal(err)
	}
	return img
}

// TestImageDeploy builds images without Docker, from a static Go binary,
// pushes them to the registry of a `pier up` and deploys them with
// pier deploy --image: the router serves the image's process, run with
// its config (entrypoint, env, working directory, its exposed port as
// PORT in the job's own network; never as root); a
// second image on the same base layer downloads only its own layer; an
// image with a layer that climbs out of its root is refused with a clear
// error and nothing is written outside.
func TestImageDeploy(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "server")
	os.WriteFile(filepath.Join(dir, "main.go"), []byte(imageServer), 0o644)
	build := exec.Command("go", "build", "-o", bin, "main.go")
	build.Dir = dir
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=mod", "GO111MODULE=off")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the image's server: %v\n%s", err, out)
	}
	server, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}

	dataDir := filepath.Join(dir, "data")
	p := startUp(t, dataDir, freeUpPorts(t))
	u := cliUser{t, p}
	u.must("create", "imgapp")
	key, err := os.ReadFile(filepath.Join(dataDir, "admin.key"))
	if err != nil {
		t.Fatal(err)
	}
	ca, err := os.ReadFile(filepath.Join(dataDir, "pki", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	registry := "127.0.0.1:" + strconv.Itoa(p.apiPort)
	push := func(tag string, img v1.Image) string {
		t.Helper()
		ref, err := name.ParseReference(registry + "/imgapp:" + tag)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(ref, img, remote.WithTransport(tr),
			remote.WithAuth(&authn.Basic{Username: "pier", Password: strings.TrimSpace(string(key))})); err != nil {
			t.Fatalf("push %s: %v", ref, err)
		}
		d, _ := img.Digest()
		return d.Hex
	}

	// The base layer: an absolute symlink (resolved in the image's root,
	// so made relative on the host) and a file the next layer deletes.
	base := layer(t,
		tarEntry{name: "etc/", typ: tar.TypeDir, mode: 0o755},
		tarEntry{name: "etc/base.txt", body: "from the base layer\n"},
		tarEntry{name: "etc/motd", typ: tar.TypeSymlink, link: "/etc/base.txt"},
		tarEntry{name: "etc/extra", body: "deleted above\n"},
	)
	app := func(greeting string) v1.Layer {
		return layer(t,
			tarEntry{name: "app/", typ: tar.TypeDir, mode: 0o755},
			tarEntry{name: "app/server", body: string(server), mode: 0o4755}, // setuid: dropped
			tarEntry{name: "app/version", body: greeting},
			tarEntry{name: "etc/", typ: tar.TypeDir, mode: 0o755},
			tarEntry{name: "etc/.wh.extra"},
		)
	}
	cfg := func(greeting string) v1.Config {
		return v1.Config{Entrypoint: []string{"/app/server"}, Env: []string{"GREETING=" + greeting, "PATH=/app"},
			WorkingDir: "/app", User: "0", ExposedPorts: map[string]struct{}{"9090/tcp": {}, "80/tcp": {}}}
	}
	baseDigest, _ := base.Digest()
	// The app's own uid, never root (the image asks for USER 0).
	uid := "uid=" + strconv.Itoa(api.AppUID("imgapp"))
	push("v1", image(t, cfg("hello v1"), base, app("hello v1")))

	serving := func(want string) {
		t.Helper()
		var last string
		deadline := time.Now().Add(30 * time.Second)
		for {
			code, body, err := get(p, "imgapp", "/")
			if code == 200 && body == want {
				return
			}
			last = fmt.Sprintf("%d %q %v", code, body, err)
			if time.Now().After(deadline) {
				t.Fatalf("the router does not serve %q; last answer: %s", want, last)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	start := time.Now()
	u.must("deploy", "-a", "imgapp", "--image", registry+"/imgapp:v1")
	cold := time.Since(start)
	serving("hello v1|from the base layer|extra=false|" + uid + "|wd=/app|port=9090")

	d2 := push("v2", image(t, cfg("hello v2"), base, app("hello v2")))
	start = time.Now()
	u.must("deploy", "-a", "imgapp", "--image", registry+"/imgapp:v2")
	warm := time.Since(start)
	serving("hello v2|from the base layer|extra=false|" + uid + "|wd=/app|port=9090")
	t.Logf("deploy --image: cold %s, with the base layer cached %s", cold.Round(time.Millisecond), warm.Round(time.Millisecond))

	// The base layer was unpacked once, for both images.
	unpacked := 0
	for _, line := range strings.Split(p.stderr.String(), "\n") {
		if strings.Contains(line, "image layer unpacked") && strings.Contains(line, baseDigest.Hex) {
			unpacked++
		}
	}
	if unpacked != 1 {
		t.Errorf("the base layer was unpacked %d times, want once", unpacked)
	}
	if out := u.must("releases", "-a", "imgapp"); !strings.Contains(out, "image sha256:"+d2) {
		t.Errorf("pier releases does not show v2's image digest %s:\n%s", d2, out)
	}

	// A layer that climbs out of its root.
	evil := layer(t, tarEntry{name: "../escape", body: "out\n"})
	push("evil", image(t, cfg("evil"), base, evil))
	u.fails("unsafe archive entry", "deploy", "-a", "imgapp", "--image", registry+"/imgapp:evil")
	if _, err := os.Stat(filepath.Join(dataDir, "escape")); err == nil {
		t.Error("the evil layer wrote outside its directory")
	}
	matches, _ := filepath.Glob(filepath.Join(dataDir, "*", "escape"))
	if len(matches) > 0 {
		t.Errorf("the evil layer wrote %v", matches)
	}
	serving("hello v2|from the base layer|extra=false|" + uid + "|wd=/app|port=9090")
}
