package dashboard_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/pierpaas/pier/host/agent"
	"github.com/pierpaas/pier/internal/cliconfig"
	"github.com/pierpaas/pier/internal/testutil"
)

// The browser tests drive the real thing: the pier binary (`pier up`,
// real containers, the sample app) and Debian's Chromium, headless.

var pierBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pier-bin")
	if err != nil {
		panic(err)
	}
	pierBin = filepath.Join(dir, "pier")
	out, err := exec.Command("go", "build", "-o", pierBin, "../cmd/pier").CombinedOutput()
	if err != nil {
		panic("build pier: " + err.Error() + "\n" + string(out))
	}
	// Chromium is started here, before any test; a test that needs it and
	// finds it did not start fails with the error.
	if _, err := os.Stat(chromiumPath); err == nil {
		startBrowser(filepath.Join(dir, "chromium"))
	}
	code := m.Run()
	if browser.cancel != nil {
		browser.cancel()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// up is a `pier up` in a temporary directory, with its own CLI config.
type up struct {
	t          *testing.T
	cmd        *exec.Cmd
	apiPort    int
	httpPort   int
	configHome string
	key        string
	stderr     *strings.Builder
	exited     chan struct{}
}

// startUp starts `pier up` and waits until it is ready. It is stopped,
// and the containers it started removed, when the test ends.
func startUp(t *testing.T) *up {
	t.Helper()
	root := t.TempDir()
	dataDir := filepath.Join(root, "data")
	ports := make([]int, 8)
	for i := range ports {
		ports[i] = testutil.FreePort(t)
	}
	p := &up{t: t, apiPort: ports[2], httpPort: ports[5], configHome: filepath.Join(root, "config"),
		stderr: &strings.Builder{}, exited: make(chan struct{})}
	p.cmd = exec.Command(pierBin, "up", "--data-dir", dataDir,
		"--etcd-client-port", strconv.Itoa(ports[0]), "--etcd-peer-port", strconv.Itoa(ports[1]),
		"--api-port", strconv.Itoa(ports[2]), "--dns-port", strconv.Itoa(ports[3]),
		"--host-api-port", strconv.Itoa(ports[4]), "--http-port", strconv.Itoa(ports[5]),
		"--https-port", strconv.Itoa(ports[6]), "--git-ssh-port", strconv.Itoa(ports[7]))
	p.cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+p.configHome)
	p.cmd.Stderr = p.stderr
	// Cleanups run last first: pier up is killed, then what its host
	// agent left (containers, shims, mounts) is removed.
	t.Cleanup(func() { agent.Purge(filepath.Join(dataDir, "host")) })
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() { p.cmd.Process.Kill(); <-p.exited })

	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	cfgPath := filepath.Join(p.configHome, "pier", "config.json")
	waitFor(t, "pier up to be ready", 60*time.Second, func() bool {
		select {
		case <-p.exited:
			t.Fatalf("pier up exited:\n%s", p.stderr)
		default:
		}
		resp, err := hc.Get(p.url("/readyz"))
		if err != nil {
			return false
		}
		resp.Body.Close()
		_, err = os.Stat(cfgPath)
		return resp.StatusCode == 200 && err == nil
	})
	cfg, err := cliconfig.Load(cfgPath)
	if err != nil || len(cfg.Clusters) == 0 {
		t.Fatalf("the CLI config pier up wrote: %+v, %v", cfg, err)
	}
	p.key = cfg.Clusters[0].Key
	return p
}

func (p *up) url(path string) string { return "https://127.0.0.1:" + strconv.Itoa(p.apiPort) + path }

// pier runs the CLI against this pier up and fails the test unless it
// succeeds.
func (p *up) pier(args ...string) string {
	p.t.Helper()
	cmd := exec.Command(pierBin, args...)
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+p.configHome, "PIER_APP=", "PIER_URL=", "PIER_KEY=")
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		p.t.Fatalf("pier %s: %v\nstdout: %s\nstderr: %s\npier up:\n%s", strings.Join(args, " "), err, &stdout, &stderr, tail(p.stderr.String(), 3000))
	}
	return stdout.String()
}

// getApp asks the router for path on app's domain.
func (p *up) getApp(app, path string) (int, error) {
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d%s", p.httpPort, path), nil)
	req.Host = app + ".localhost"
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		<-tick.C
	}
}

// chromiumPath is Debian's Chromium, which scripts/setup installs.
const chromiumPath = "/usr/bin/chromium"

// The browser is started once for the test binary, before anything else
// runs in it, and each test gets a tab in a browser context of its own
// (its own cookies, like a private window). Started late in a process
// that had run the benchmark's in-process cluster, Chromium failed to come
// up every time (its zygote gone at once), which is not understood yet;
// started first, it runs.
var browser struct {
	once   sync.Once
	ctx    context.Context
	cancel func()
	err    error
}

// startBrowser starts the shared Chromium. The cluster's certificate is
// its own CA's, which the browser does not know: certificate errors are
// ignored, as a user would accept the certificate once.
func startBrowser(dataDir string) error {
	browser.once.Do(func() {
		opts := append(chromedp.DefaultExecAllocatorOptions[:],
			chromedp.ExecPath(chromiumPath),
			chromedp.NoSandbox, // tests run as root
			chromedp.Flag("ignore-certificate-errors", true),
			chromedp.Flag("disable-dev-shm-usage", true),
			chromedp.WindowSize(1280, 900),
			chromedp.UserDataDir(dataDir),
		)
		actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
		ctx, cancel := chromedp.NewContext(actx)
		browser.ctx, browser.cancel = ctx, func() { cancel(); cancelAlloc() }
		browser.err = chromedp.Do(ctx)
	})
	return browser.err
}

// newBrowser returns a new tab, in a fresh browser context, closed when
// the test ends.
func newBrowser(t testing.TB) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("Chromium is needed for the dashboard's tests (scripts/setup installs it): %v", err)
	}
	if browser.err != nil || browser.ctx == nil {
		t.Fatalf("start Chromium: %v", browser.err)
	}
	ctx, cancel := chromedp.NewContext(browser.ctx, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	return ctx
}

// run runs browser actions, each step bounded so a stuck page fails the
// test instead of hanging it.
func run(t testing.TB, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// waitJS polls a JavaScript expression in the page until it is true.
func waitJS(t testing.TB, ctx context.Context, what string, timeout time.Duration, expr string) {
	t.Helper()
	var lastErr error
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		var ok bool
		ok, lastErr = chromedp.Run(cctx, chromedp.Evaluate[bool](expr))
		cancel()
		if lastErr == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			body, _ := chromedp.Run(cctx, chromedp.Evaluate[string](`document.body.innerText`))
			cancel()
			t.Fatalf("timed out after %s waiting for %s (%s; last error %v); the page says:\n%s", timeout, what, expr, lastErr, tail(body, 3000))
		}
		<-tick.C
	}
}

// evalJS evaluates an expression in the page (a promise is awaited).
func evalJS[T any](t testing.TB, ctx context.Context, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// screenshot saves the page, when DASHBOARD_SCREENSHOTS names a
// directory (docs/dashboard's images are made so).
func screenshot(t testing.TB, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("DASHBOARD_SCREENSHOTS")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// setValue sets a form field's value, as typing over it would.
func setValue(sel, v string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Evaluate[bool](fmt.Sprintf(`(e => (e.value = %q, true))(document.querySelector(%q))`, v, sel))(ctx, t)
		return err
	})
}

// navigate opens u in the tab. Chromium abandons a load when the
// machine's network interfaces change (ERR_NETWORK_CHANGED), which other
// tests creating network namespaces and bridges on this machine do at any
// moment: such a load is tried again.
func navigate(t testing.TB, ctx context.Context, u string) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		err := chromedp.Do(cctx, chromedp.Navigate(u))
		cancel()
		if err == nil {
			return
		}
		if attempt == 5 || !strings.Contains(err.Error(), "ERR_NETWORK_CHANGED") {
			t.Fatalf("open %s: %v", u, err)
		}
		t.Logf("open %s: %v; again", u, err)
	}
}

// selfSignedCert writes a certificate for domain valid until notAfter,
// and its key, as PEM files.
func selfSignedCert(t testing.TB, domain string, notAfter time.Time) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: domain}, DNSNames: []string{domain},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// clickJS clicks the element sel finds, in one step in the page: a
// section the events stream redraws can replace an element between
// chromedp finding it and clicking it.
func clickJS(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		ok, err := chromedp.Evaluate[bool](fmt.Sprintf(`(e => e ? (e.click(), true) : false)(document.querySelector(%q))`, sel))(ctx, t)
		if err == nil && !ok {
			err = fmt.Errorf("no element %s to click", sel)
		}
		return err
	})
}
