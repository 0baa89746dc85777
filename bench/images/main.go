// Command images measures pier's image support on a single-node `pier up`
// in a temporary directory: registry push and pull throughput of one large
// layer beside the blobstore's own blob endpoint (the registry stores
// blobs there), and pull-and-start time of `pier deploy --image` until
// the router answers, for an image whose layers the host has never seen
// (cold) and for a second image that shares its large base layer (cached).
//
//	go run ./bench/images [-mb 64]
package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"archive/tar"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/pierpaas/pier/host/agent"
)

const server = `package main

import (
	"net/http"
	"os"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(os.Getenv("GREETING"))) })
	http.ListenAndServe(":"+os.Getenv("PORT"), nil)
}
`

func main() {
	mb := flag.Int("mb", 64, "size of the large (base) layer, in MiB of incompressible data")
	flag.Parse()
	root, err := os.MkdirTemp("", "pier-bench-images-")
	if err != nil {
		fatalf("%v", err)
	}
	defer os.RemoveAll(root)
	b := &bench{root: root}
	defer b.cleanup()
	if err := b.start(); err != nil {
		b.cleanup()
		fatalf("%v", err)
	}
	if err := b.measure(*mb); err != nil {
		b.cleanup()
		fatalf("%v", err)
	}
}

type bench struct {
	root, pier        string
	apiPort, httpPort int
	up                *exec.Cmd
	key               string
	tr                *http.Transport
}

func (b *bench) dataDir() string { return filepath.Join(b.root, "data") }
func (b *bench) env() []string {
	return append(os.Environ(), "XDG_CONFIG_HOME="+filepath.Join(b.root, "config"))
}

func (b *bench) run(dir, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Env = dir, b.env()
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

func (b *bench) start() error {
	b.pier = filepath.Join(b.root, "pier")
	if err := b.run(".", "go", "build", "-o", b.pier, "./cmd/pier"); err != nil {
		return err
	}
	ports := make([]string, 8)
	for i := range ports {
		ports[i] = strconv.Itoa(freePort())
	}
	b.apiPort, _ = strconv.Atoi(ports[2])
	b.httpPort, _ = strconv.Atoi(ports[5])
	b.up = exec.Command(b.pier, "up", "--data-dir", b.dataDir(),
		"--etcd-client-port", ports[0], "--etcd-peer-port", ports[1], "--api-port", ports[2], "--dns-port", ports[3],
		"--host-api-port", ports[4], "--http-port", ports[5], "--https-port", ports[6], "--git-ssh-port", ports[7])
	b.up.Env = b.env()
	log, err := os.Create(filepath.Join(b.root, "up.log"))
	if err != nil {
		return err
	}
	b.up.Stdout, b.up.Stderr = log, log
	if err := b.up.Start(); err != nil {
		return err
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		if b.run(".", b.pier, "apps") == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pier up did not come up; see %s", log.Name())
		}
	}
	key, err := os.ReadFile(filepath.Join(b.dataDir(), "admin.key"))
	if err != nil {
		return err
	}
	b.key = strings.TrimSpace(string(key))
	ca, err := os.ReadFile(filepath.Join(b.dataDir(), "pki", "ca.crt"))
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	b.tr = http.DefaultTransport.(*http.Transport).Clone()
	b.tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	return nil
}

func (b *bench) registry() string { return "127.0.0.1:" + strconv.Itoa(b.apiPort) }

func (b *bench) opts() []remote.Option {
	return []remote.Option{remote.WithTransport(b.tr), remote.WithAuth(&authn.Basic{Username: "pier", Password: b.key})}
}

func (b *bench) measure(mb int) error {
	if err := b.run(".", b.pier, "create", "bench-img"); err != nil {
		return err
	}
	data := make([]byte, mb<<20)
	rand.Read(data)
	baseLayer, err := tarLayer(map[string][]byte{"data/blob": data})
	if err != nil {
		return err
	}
	size := float64(len(data)) / (1 << 20)

	// Raw blobstore, then the registry, with the same bytes (new ones
	// each, so neither finds them stored).
	raw := make([]byte, len(data))
	rand.Read(raw)
	sum := sha256.Sum256(raw)
	url := "https://" + b.registry() + "/v1/blobs/sha256/" + hex.EncodeToString(sum[:])
	hc := &http.Client{Transport: b.tr}
	start := time.Now()
	if err := b.do(hc, http.MethodPut, url, raw); err != nil {
		return err
	}
	rawPut := time.Since(start)
	start = time.Now()
	if err := b.do(hc, http.MethodGet, url, nil); err != nil {
		return err
	}
	rawGet := time.Since(start)

	repo, err := name.NewRepository(b.registry() + "/bench-img")
	if err != nil {
		return err
	}
	start = time.Now()
	if err := remote.WriteLayer(repo, baseLayer, b.opts()...); err != nil {
		return err
	}
	regPush := time.Since(start)
	d, _ := baseLayer.Digest()
	start = time.Now()
	l, err := remote.Layer(repo.Digest(d.String()), b.opts()...)
	if err != nil {
		return err
	}
	rc, err := l.Compressed()
	if err != nil {
		return err
	}
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return err
	}
	rc.Close()
	regPull := time.Since(start)
	fmt.Printf("%.0f MiB layer     push         pull\n", size)
	fmt.Printf("blobstore      %6.0f MiB/s %6.0f MiB/s\n", size/rawPut.Seconds(), size/rawGet.Seconds())
	fmt.Printf("registry       %6.0f MiB/s %6.0f MiB/s\n", size/regPush.Seconds(), size/regPull.Seconds())

	// Pull-and-start.
	bin := filepath.Join(b.root, "server")
	os.WriteFile(filepath.Join(b.root, "main.go"), []byte(server), 0o644)
	build := exec.Command("go", "build", "-o", bin, "main.go")
	build.Dir, build.Env = b.root, append(os.Environ(), "CGO_ENABLED=0", "GO111MODULE=off")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build server: %v\n%s", err, out)
	}
	srv, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	fmt.Printf("deploy --image until the router answers\n")
	for i, greeting := range []string{"cold", "cached base"} {
		app, err := tarLayer(map[string][]byte{"app/server": srv, "app/greeting": []byte(greeting)})
		if err != nil {
			return err
		}
		img, err := mutate.AppendLayers(empty.Image, baseLayer, app)
		if err != nil {
			return err
		}
		if img, err = mutate.Config(img, v1.Config{Entrypoint: []string{"/app/server"}, Env: []string{"GREETING=" + greeting}}); err != nil {
			return err
		}
		tag := "v" + strconv.Itoa(i+1)
		ref, _ := name.ParseReference(b.registry() + "/bench-img:" + tag)
		if err := remote.Write(ref, img, b.opts()...); err != nil {
			return err
		}
		start := time.Now()
		if err := b.run(".", b.pier, "deploy", "-a", "bench-img", "--no-wait", "--image", ref.String()); err != nil {
			return err
		}
		for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(20 * time.Millisecond) {
			if body, err := b.get("bench-img"); err == nil && body == greeting {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s never answered", tag)
			}
		}
		fmt.Printf("%-14s %8s\n", greeting, time.Since(start).Round(10*time.Millisecond))
	}
	return nil
}

func (b *bench) do(hc *http.Client, method, url string, body []byte) error {
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
	if body == nil {
		req.Body = nil
	}
	req.SetBasicAuth("pier", b.key)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %s", method, url, resp.Status)
	}
	return nil
}

func tarLayer(files map[string][]byte) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			return nil, err
		}
		tw.Write(body)
	}
	tw.Close()
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
}

func (b *bench) get(app string) (string, error) {
	req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:"+strconv.Itoa(b.httpPort)+"/", nil)
	req.Host = app + ".localhost"
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return string(body), err
}

// cleanup stops pier up and removes the containers and shims it left.
func (b *bench) cleanup() {
	if b.up != nil && b.up.Process != nil {
		b.up.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { b.up.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			b.up.Process.Kill()
		}
		b.up = nil
	}
	agent.Purge(filepath.Join(b.dataDir(), "host"))
}

func freePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fatalf("%v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench/images: "+format+"\n", args...)
	os.Exit(1)
}
