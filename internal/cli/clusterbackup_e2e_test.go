package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// envServer answers every request with its GREETING config var.
const envServer = `import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        b = (os.environ.get("GREETING", "") + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("", int(os.environ["PORT"])), H).serve_forever()
`

// TestClusterBackupRestore: two apps with config and a route are backed
// up under load (no request fails), the machine is lost (process killed,
// data directory gone), a damaged or cut copy of the backup is refused
// with nothing written, and the backup restored into a fresh data
// directory with a new domain serves both apps again, with their config
// and the moved route, without a push; the old API key still works.
func TestClusterBackupRestore(t *testing.T) {
	tmp := t.TempDir()
	dataDir := filepath.Join(tmp, "data")
	ports := freeUpPorts(t)
	p := startUp(t, dataDir, ports)
	u := cliUser{t, p}

	app := writeApp(t, "web: python3 server.py\n", map[string]string{"server.py": envServer})
	for _, name := range []string{"alpha", "beta"} {
		u.must("create", name)
		u.must("deploy", "--no-build", "-a", name, app)
		u.must("config:set", "-a", name, "GREETING=hello from "+name)
	}
	u.must("routes", "add", "http", "www.beta.localhost", "-a", "beta")
	answers := func(p *upProc, host, want string) func() bool {
		return func() bool {
			code, body, _ := getHost(p, host, "/")
			return code == 200 && body == want+"\n"
		}
	}
	for _, host := range []string{"alpha.localhost", "beta.localhost", "www.beta.localhost"} {
		name := strings.Split(strings.TrimPrefix(host, "www."), ".")[0]
		waitUntil(t, host+" to answer with its config", 30*time.Second, answers(p, host, "hello from "+name))
	}

	// The backup, while requests keep coming through the router.
	var ok, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if answers(p, "alpha.localhost", "hello from alpha")() {
				ok.Add(1)
			} else {
				failed.Add(1)
			}
		}
	}()
	file := filepath.Join(tmp, "cluster.backup")
	out, errOut, code := u.run("cluster", "backup", "-o", file)
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	if code != 0 {
		t.Fatalf("cluster backup: exit %d\n%s%s\n%s", code, out, errOut, tail(p.stderr.String(), 3000))
	}
	if failed.Load() != 0 || ok.Load() == 0 {
		t.Fatalf("during the backup: %d requests answered, %d failed", ok.Load(), failed.Load())
	}
	fi, err := os.Stat(file)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v %v", fi, err)
	}
	t.Logf("backup: %d bytes, %d requests served meanwhile; %s", fi.Size(), ok.Load(), strings.TrimSpace(errOut))
	if out := u.must("cluster", "restore", "--check", file); !strings.Contains(out, "domain: localhost") || !strings.Contains(out, "artifacts: 1 ") {
		t.Fatalf("restore --check said:\n%s", out)
	}

	// The machine is lost.
	p.cmd.Process.Kill()
	<-p.exited
	cleanupHost(filepath.Join(dataDir, "host"))
	os.RemoveAll(dataDir)

	// A damaged copy and a cut one are refused, and nothing is written.
	good, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	newDir := filepath.Join(tmp, "data2")
	damaged := append([]byte(nil), good...)
	damaged[len(damaged)/2] ^= 0x01
	for name, b := range map[string][]byte{"damaged": damaged, "cut": good[:len(good)*2/3]} {
		bad := filepath.Join(tmp, name+".backup")
		os.WriteFile(bad, b, 0o600)
		u.fails("damaged or incomplete", "cluster", "restore", bad, "--data-dir", newDir)
		if _, err := os.Stat(newDir); !os.IsNotExist(err) {
			t.Fatalf("a %s backup was refused, but %s was made: %v", name, newDir, err)
		}
	}
	// A directory that holds something is no place for a restore.
	busy := t.TempDir()
	os.WriteFile(filepath.Join(busy, "x"), nil, 0o600)
	u.fails("not empty", "cluster", "restore", file, "--data-dir", busy)

	// Restored on a fresh data directory under a new domain, both apps
	// serve again with their config, and the route moved with them.
	p2 := startUp(t, newDir, ports, "--restore", file, "--domain", "restored.test")
	u2 := cliUser{t, p2}
	for _, host := range []string{"alpha.restored.test", "beta.restored.test", "www.beta.restored.test"} {
		name := strings.Split(strings.TrimPrefix(host, "www."), ".")[0]
		waitUntil(t, host+" to answer after the restore", 45*time.Second, answers(p2, host, "hello from "+name))
	}
	if out := u2.must("apps"); !strings.Contains(out, "alpha") || !strings.Contains(out, "beta") {
		t.Fatalf("apps after the restore:\n%s", out)
	}
	if out := u2.must("routes", "-a", "beta"); !strings.Contains(out, "www.beta.restored.test") || strings.Contains(out, "www.beta.localhost") {
		t.Fatalf("beta's routes after the restore:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(newDir, "restore")); !os.IsNotExist(err) {
		t.Fatalf("the staged restore was not cleared: %v", err)
	}
}
