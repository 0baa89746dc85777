package build

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pierpaas/pier/api"
)

// TestMain lets the test binary stand in for the pier binary inside
// process commands: the static buildpack's web process is
// "/.pier/pier serve-static ...", and the tests run it as
// "<test binary> serve-static ...".
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "serve-static" {
		fs := flag.NewFlagSet("serve-static", flag.ExitOnError)
		root := fs.String("root", ".", "")
		fs.Parse(os.Args[2:])
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		defer stop()
		if err := ServeStatic(ctx, *root, ":"+os.Getenv("PORT")); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// examplesDir is the repository's examples/.
func examplesDir(t *testing.T) string {
	t.Helper()
	d, err := filepath.Abs(filepath.Join("..", "examples"))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// copyApp copies src into a fresh temp directory and returns it: builds
// compile in place, and the examples must stay as they are.
func copyApp(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "app")
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	return dst
}

// writeFiles creates files (name → content) under dir; names ending in
// "bin/..." are made executable.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if strings.Contains(name, "bin/") {
			mode = 0o755
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for a process's output goroutines
// and the test reading it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// compileApp runs Compile on appDir and fails the test on error.
func compileApp(t *testing.T, appDir, cacheDir string) (api.BuildResult, string) {
	t.Helper()
	var out syncBuffer
	res, err := Compile(context.Background(), Options{AppDir: appDir, CacheDir: cacheDir, Out: &out, TempDir: t.TempDir()})
	if err != nil {
		t.Fatalf("Compile: %v\noutput:\n%s", err, out.String())
	}
	t.Logf("build output:\n%s", out.String())
	return res, out.String()
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
}

// startWeb runs a process type's command as RunSlug would, but with the
// app in appDir and without replacing the test: the same argv and
// environment from slugExec. It waits until GET / answers and returns
// the base URL; the process group is killed when the test ends.
func startWeb(t *testing.T, appDir, command string) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	command = strings.ReplaceAll(command, api.PierBinary+" ", self+" ")
	port := freePort(t)
	env := append(os.Environ(), "PORT="+port, "PIER_PROCESS_TYPE=web", "PIER_JOB_ID=test1")
	argv, env := slugExec(appDir, command, env)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir, cmd.Env = appDir, env
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	})
	base := "http://127.0.0.1:" + port
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(base + "/")
		if err == nil {
			resp.Body.Close()
			return base
		}
		select {
		case <-exited:
			t.Fatalf("web process %q exited:\n%s", command, out.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("web process %q does not answer on port %s: %v\n%s", command, port, err, out.String())
		}
	}
}

// get returns the status and body of GET url.
func get(t *testing.T, url string) (int, http.Header, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}
