package cli_test

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestGitPushWithUserEnvironment: a developer whose environment points
// git at the system CAs (GIT_SSL_CAINFO, as on corporate machines and CI
// runners), at a proxy for the internet (HTTPS_PROXY, with a NO_PROXY
// that does not cover the cluster) and at the system CAs for everything
// else (SSL_CERT_FILE) still pushes, through pier:// and git-remote-pier;
// the CLI talks to the cluster as before. A push over the https:// remote
// that pier create writes when git cannot find the helper fails in the
// same environment, which is why the helper exists.
func TestGitPushWithUserEnvironment(t *testing.T) {
	const bundle = "/etc/ssl/certs/ca-certificates.crt"
	if _, err := os.Stat(bundle); err != nil {
		t.Fatalf("no system CA bundle: %v", err)
	}
	p := startUp(t, filepath.Join(t.TempDir(), "data"), freeUpPorts(t))
	u := newPusher(t, p)
	// A proxy that refuses every connection: anything sent to it fails.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	proxy := "http://" + ln.Addr().String()
	ln.Close()
	// git-remote-pier on the PATH, as make build leaves it beside pier.
	binDir := t.TempDir()
	if err := os.Symlink(pierBin, filepath.Join(binDir, "git-remote-pier")); err != nil {
		t.Fatal(err)
	}
	u.extra = []string{"GIT_SSL_CAINFO=" + bundle, "SSL_CERT_FILE=" + bundle,
		"HTTPS_PROXY=" + proxy, "https_proxy=" + proxy, "NO_PROXY=example.com", "no_proxy=example.com",
		"PATH=" + binDir + string(os.PathListSeparator) + os.Getenv("PATH")}

	dir := u.checkout("hello")
	if out := u.must(dir, pierBin, "create", "envhello"); !strings.Contains(out, "Git remote pier: pier://envhello") {
		t.Fatalf("create in a checkout with git-remote-pier on the PATH:\n%s", out)
	}
	if url := strings.TrimSpace(u.must(dir, "git", "remote", "get-url", "pier")); url != "pier://envhello" {
		t.Fatalf("remote pier = %q", url)
	}
	out, took := u.push(dir)
	t.Logf("push through git-remote-pier with GIT_SSL_CAINFO=%s and HTTPS_PROXY set took %s", bundle, took)
	if !strings.Contains(out, "deployed") {
		t.Fatalf("push:\n%s", out)
	}
	u.serves("envhello", "hello from pier")
	// The app is the remote's, for every command in the checkout.
	if out := u.must(dir, pierBin, "releases"); !strings.Contains(out, "v1") {
		t.Fatalf("pier releases in the checkout:\n%s", out)
	}

	// The same checkout with the https:// remote of a machine without
	// the helper: git takes the environment's CAs over the checkout's
	// http.sslCAInfo, and fails.
	u.extra = []string{"GIT_SSL_CAINFO=" + bundle}
	if out := u.must(dir, pierBin, "git-remote"); !strings.Contains(out, "Git remote pier: https://") {
		t.Fatalf("git-remote without the helper on the PATH:\n%s", out)
	}
	u.commit(dir, "index.html", "hello again\n")
	out, err = u.run(dir, u.key, "git", "push", "pier", "main")
	if err == nil || !strings.Contains(out, "certificate") {
		t.Fatalf("push over https:// with GIT_SSL_CAINFO=%s: %v, want a certificate error (else this test shows nothing)\n%s", bundle, err, out)
	}
	t.Logf("without the helper: %s", lastLines(out, 1))
}

// TestCreateInPiersOwnSource: pier create run inside a checkout of pier
// itself creates the app but leaves the checkout alone.
func TestCreateInPiersOwnSource(t *testing.T) {
	p := startUp(t, filepath.Join(t.TempDir(), "data"), freeUpPorts(t))
	u := newPusher(t, p)
	dir := filepath.Join(t.TempDir(), "pier")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module github.com/pierpaas/pier\n\ngo 1.24\n"), 0o644)
	u.must(dir, "git", "init", "-q", "-b", "main")
	out := u.must(dir, pierBin, "create", "mine")
	if !strings.Contains(out, "Created mine") || strings.Contains(out, "Git remote") {
		t.Fatalf("create in pier's source:\n%s", out)
	}
	if cfg := u.must(dir, "git", "config", "--local", "--list"); strings.Contains(cfg, "remote.pier") || strings.Contains(cfg, "credential") || strings.Contains(cfg, "sslcainfo") {
		t.Fatalf("pier's checkout got pier settings:\n%s", cfg)
	}
	// Anywhere else it does add them.
	other := u.checkout("hello")
	if out := u.must(other, pierBin, "create", "notmine"); !strings.Contains(out, "Git remote pier:") {
		t.Fatalf("create in another checkout:\n%s", out)
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
