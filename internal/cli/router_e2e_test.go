package cli_test

import (
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pierpaas/pier/internal/testutil"
)

// TestStandaloneRouter joins a second router to a `pier up` cluster, as
// an ingress node would, and reaches the app through it; its ops port
// answers /readyz and serves the router's metrics.
func TestStandaloneRouter(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	p := startUp(t, dataDir, freeUpPorts(t))
	u := cliUser{t, p}
	u.must("create", "hello")
	// Each backend serves its own job id at /id, for the sticky check.
	u.must("deploy", "--no-build", "-a", "hello", writeApp(t,
		"web: cp -r /app /tmp/site && echo $PIER_JOB_ID > /tmp/site/id && cd /tmp/site && exec python3 -m http.server $PORT\n",
		map[string]string{"index.html": "through the second router\n"}))
	u.must("scale", "-a", "hello", "web=2")
	u.must("routes", "add", "http", "sticky.example.test", "--sticky", "-a", "hello")

	token := strings.TrimSpace(u.must("token", "--data-dir", dataDir))
	httpPort, opsPort := testutil.FreePort(t), testutil.FreePort(t)
	cmd := exec.Command(pierBin, "router", "--data-dir", filepath.Join(t.TempDir(), "router"), "--name", "edge1",
		"--join", "127.0.0.1:"+strconv.Itoa(p.apiPort), "--token", token,
		"--http-port", strconv.Itoa(httpPort), "--https-port", "0", "--ops-port", strconv.Itoa(opsPort),
		"--tcp-ports", "")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

	get := func(url, host string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Host = host
		resp, err := (&http.Client{Timeout: 2 * time.Second}).Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 64<<10)
		n, _ := resp.Body.Read(buf)
		b.Write(buf[:n])
		return resp.StatusCode, b.String()
	}
	waitUntil(t, "the app through the standalone router", 30*time.Second, func() bool {
		code, body := get(fmt.Sprintf("http://127.0.0.1:%d/", httpPort), "hello.localhost")
		return code == 200 && strings.Contains(body, "through the second router")
	})

	// A sticky cookie one router signed holds on the other: they share
	// the key through the store.
	waitUntil(t, "two web jobs", 30*time.Second, func() bool { return running(u.jobs("hello"), 1) == 2 })
	var cookie *http.Cookie
	var pinned string
	waitUntil(t, "a sticky cookie from the first router", 10*time.Second, func() bool {
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/id", p.httpPort), nil)
		req.Host = "sticky.example.test"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if cs := resp.Cookies(); resp.StatusCode == 200 && len(cs) == 1 {
			cookie, pinned = cs[0], strings.TrimSpace(string(b))
			return true
		}
		return false
	})
	for i := range 10 {
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/id", httpPort), nil)
		req.Host = "sticky.example.test"
		req.AddCookie(cookie)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if got := strings.TrimSpace(string(b)); got != pinned {
			t.Fatalf("request %d through the second router reached %q, not the pinned %q", i, got, pinned)
		}
	}

	ops := fmt.Sprintf("http://127.0.0.1:%d", opsPort)
	if code, body := get(ops+"/readyz", ""); code != 200 {
		t.Fatalf("readyz: %d %s\n%s", code, body, stderr.String())
	}
	if code, body := get(ops+"/metrics", ""); code != 200 || !strings.Contains(body, "pier_router_") {
		t.Fatalf("metrics: %d %.300s", code, body)
	}
}
