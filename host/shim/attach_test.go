package shim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/host/joblog"
	"github.com/pierpaas/pier/host/shim"
	"github.com/pierpaas/pier/runtime"
)

var testLog = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

// startShim supervises cfg's job with rt in the test's process, as the
// in-process launcher does, and returns the job's directory and a channel
// that receives Run's error when it returns.
func startShim(t *testing.T, rt runtime.Runtime, cfg shim.Config) (string, <-chan error) {
	dir, done := startShimDone(t, rt, cfg)
	errc := make(chan error, 1)
	go func() { <-done.c; errc <- done.err }()
	return dir, errc
}

type runDone struct {
	c   chan struct{}
	err error
}

func startShimDone(t *testing.T, rt runtime.Runtime, cfg shim.Config) (string, *runDone) {
	t.Helper()
	dir := t.TempDir()
	sockDir, err := os.MkdirTemp("/tmp", "shimtest")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	cfg.Socket = filepath.Join(sockDir, "s")
	if err := shim.WriteConfig(dir, &cfg); err != nil {
		t.Fatal(err)
	}
	logs, err := joblog.NewWriter(shim.LogDir(dir), joblog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := &runDone{c: make(chan struct{})}
	go func() {
		done.err = shim.Run(ctx, dir, rt, logs, testLog)
		close(done.c)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done.c:
		case <-time.After(20 * time.Second):
			t.Error("the shim did not stop")
		}
	})
	return dir, done
}

// attach connects to the shim of dir, retrying until its socket is up.
func attach(t *testing.T, dir string, size runtime.ConsoleSize) net.Conn {
	t.Helper()
	cfg, err := shim.ReadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	c := shim.NewClient(cfg.Socket)
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, err := c.Attach(ctx, size)
		cancel()
		if err == nil {
			t.Cleanup(func() { conn.Close() })
			return conn
		}
		if time.Now().After(deadline) {
			t.Fatalf("attach: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type session struct {
	stdout, stderr bytes.Buffer
	exit           *api.AttachExit
	err            error
}

// readAll reads frames until the exit frame or the end of the stream.
// onStdout, if set, sees the stdout read so far after each frame.
func readAll(conn net.Conn, onStdout func(string)) session {
	var s session
	for {
		typ, p, err := api.ReadFrame(conn)
		if err != nil {
			s.err = err
			return s
		}
		switch typ {
		case api.FrameStdout:
			s.stdout.Write(p)
			if onStdout != nil {
				onStdout(s.stdout.String())
			}
		case api.FrameStderr:
			s.stderr.Write(p)
		case api.FrameExit:
			s.exit = &api.AttachExit{}
			s.err = json.Unmarshal(p, s.exit)
			// The shim closes the connection after the exit frame.
			if _, _, err := api.ReadFrame(conn); !errors.Is(err, io.EOF) {
				s.err = errors.Join(s.err, errors.New("a frame or garbage after the exit frame"))
			}
			return s
		}
	}
}

func send(t *testing.T, conn net.Conn, typ byte, p []byte) {
	t.Helper()
	if err := api.WriteFrame(conn, typ, p); err != nil {
		t.Fatal(err)
	}
}

func logText(t *testing.T, dir string) string {
	t.Helper()
	var lines []string
	joblog.Read(shim.LogDir(dir), 0, func(l joblog.Line) error {
		lines = append(lines, l.Stream+":"+l.Text)
		return nil
	})
	return strings.Join(lines, "\n")
}

func TestAttachStdin(t *testing.T) {
	rt := runtime.NewProcess(testLog)
	dir, done := startShim(t, rt, shim.Config{Runtime: "process", Stdin: true,
		Spec: runtime.Spec{ID: "cat", Args: []string{"sh", "-c", "cat; echo bye >&2; exit 3"}}})
	conn := attach(t, dir, runtime.ConsoleSize{})

	// A second client is turned away while the first is attached.
	cfg, _ := shim.ReadConfig(dir)
	c := shim.NewClient(cfg.Socket)
	defer c.Close()
	if _, err := c.Attach(context.Background(), runtime.ConsoleSize{}); !errors.Is(err, shim.ErrAttached) {
		t.Fatalf("second attach: %v", err)
	}

	send(t, conn, api.FrameStdin, []byte("hello\n"))
	send(t, conn, api.FrameStdin, []byte("world\n"))
	send(t, conn, api.FrameCloseStdin, nil)
	s := readAll(conn, nil)
	if s.err != nil || s.exit == nil || s.exit.ExitCode != 3 || s.stdout.String() != "hello\nworld\n" || s.stderr.String() != "bye\n" {
		t.Fatalf("session: err %v exit %+v stdout %q stderr %q", s.err, s.exit, s.stdout.String(), s.stderr.String())
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// The output is in the log too (stdout and stderr are separate pipes,
	// so their lines may interleave either way).
	if got := logText(t, dir); !strings.Contains(got, "stdout:hello\nstdout:world") || !strings.Contains(got, "stderr:bye") {
		t.Fatalf("log %q", got)
	}
	if res, _ := shim.ReadResult(dir); res == nil || res.Exit.Code != 3 {
		t.Fatalf("result %+v", res)
	}
}

// TestAttachWaitsForFirstClient: a job with stdin does not start until
// the first client attaches, so none of its output is missed.
func TestAttachWaitsForFirstClient(t *testing.T) {
	rt := runtime.NewProcess(testLog)
	dir, _ := startShim(t, rt, shim.Config{Runtime: "process", Stdin: true,
		Spec: runtime.Spec{ID: "early", Args: []string{"sh", "-c", "echo first; read x; echo got $x"}}})
	time.Sleep(300 * time.Millisecond)
	if st, _ := shim.ReadStarted(dir); st != nil {
		t.Fatal("the job started before anyone attached")
	}
	conn := attach(t, dir, runtime.ConsoleSize{})
	send(t, conn, api.FrameStdin, []byte("it\n"))
	s := readAll(conn, nil)
	if s.err != nil || s.exit == nil || s.exit.ExitCode != 0 || s.stdout.String() != "first\ngot it\n" {
		t.Fatalf("session: err %v exit %+v stdout %q", s.err, s.exit, s.stdout.String())
	}
}

// TestAttachNobodyCame: a job that nobody attaches to starts after the
// wait with an empty stdin, rather than waiting for input forever.
func TestAttachNobodyCame(t *testing.T) {
	rt := runtime.NewProcess(testLog)
	dir, done := startShim(t, rt, shim.Config{Runtime: "process", Stdin: true, AttachWait: 200 * time.Millisecond,
		Spec: runtime.Spec{ID: "alone", Args: []string{"sh", "-c", "cat; echo eof"}}})
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the job waits for input nobody will send")
	}
	if res, _ := shim.ReadResult(dir); res == nil || res.Exit.Code != 0 || logText(t, dir) != "stdout:eof" {
		t.Fatalf("result %+v log %q", res, logText(t, dir))
	}
}

// TestAttachDetachClosesStdin: without a TTY, a client that goes away
// ends the job's input.
func TestAttachDetachClosesStdin(t *testing.T) {
	rt := runtime.NewProcess(testLog)
	dir, done := startShim(t, rt, shim.Config{Runtime: "process", Stdin: true,
		Spec: runtime.Spec{ID: "gone", Args: []string{"sh", "-c", "cat; echo eof"}}})
	conn := attach(t, dir, runtime.ConsoleSize{})
	send(t, conn, api.FrameStdin, []byte("partial\n"))
	waitLog(t, dir, "stdout:partial")
	conn.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("stdin stayed open after the client left")
	}
	if got := logText(t, dir); got != "stdout:partial\nstdout:eof" {
		t.Fatalf("log %q", got)
	}
}

// TestAttachOutputOnly: any job can be attached to for the output it
// writes meanwhile; a job without stdin starts at once and ignores input.
func TestAttachOutputOnly(t *testing.T) {
	rt := runtime.NewProcess(testLog)
	dir, _ := startShim(t, rt, shim.Config{Runtime: "process",
		Spec: runtime.Spec{ID: "out", Args: []string{"sh", "-c", "trap 'echo went; exit 0' USR1; echo ready; while true; do sleep 0.05; done"}}})
	waitLog(t, dir, "stdout:ready") // started without waiting for anyone
	conn := attach(t, dir, runtime.ConsoleSize{})
	send(t, conn, api.FrameStdin, []byte("ignored\n"))
	cfg, _ := shim.ReadConfig(dir)
	c := shim.NewClient(cfg.Socket)
	defer c.Close()
	if err := c.Signal(context.Background(), syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	s := readAll(conn, nil)
	if s.err != nil || s.exit == nil || s.exit.ExitCode != 0 || s.stdout.String() != "went\n" {
		t.Fatalf("session: err %v exit %+v stdout %q", s.err, s.exit, s.stdout.String())
	}
}

func TestAttachTTYProcess(t *testing.T) {
	testAttachTTY(t, runtime.NewProcess(testLog), "process")
}

func TestAttachTTYRunc(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("these tests need root (CI runs as root): runc cannot run containers otherwise")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		t.Fatal("runc is not installed: run scripts/setup")
	}
	dir := t.TempDir()
	rt, err := runtime.NewRunc(runtime.RuncOptions{StateDir: filepath.Join(dir, "state"), Root: filepath.Join(dir, "runc"), Log: testLog})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ids, _ := rt.List()
		for _, id := range ids {
			if err := rt.Delete(id); err != nil {
				t.Errorf("delete %s: %v", id, err)
			}
		}
	})
	testAttachTTY(t, rt, "runc")
}

// testAttachTTY runs a shell on a terminal: the terminal has the size the
// client attached with from the start, follows a resize, takes input
// (echoed, as a terminal does), and the exit code comes last.
func testAttachTTY(t *testing.T, rt runtime.Runtime, name string) {
	script := `tty; stty size; read x; echo "got $x"; stty size; exit 4`
	dir, _ := startShim(t, rt, shim.Config{Runtime: name,
		Spec: runtime.Spec{ID: "tty-" + name, TTY: true, Args: []string{"/bin/sh", "-c", script}}})
	conn := attach(t, dir, runtime.ConsoleSize{Rows: 40, Cols: 100})
	sizeSeen := make(chan struct{})
	var once bool
	results := make(chan session, 1)
	go func() {
		results <- readAll(conn, func(out string) {
			if !once && strings.Contains(out, "40 100") {
				once = true
				close(sizeSeen)
			}
		})
	}()
	select {
	case <-sizeSeen:
	case s := <-results:
		t.Fatalf("session ended early: %v %+v %q", s.err, s.exit, s.stdout.String())
	case <-time.After(20 * time.Second):
		t.Fatal("the terminal did not report its initial size")
	}
	send(t, conn, api.FrameResize, api.ResizePayload(50, 120))
	time.Sleep(100 * time.Millisecond) // the resize and the input travel separately
	send(t, conn, api.FrameStdin, []byte("hello\r"))
	var s session
	select {
	case s = <-results:
	case <-time.After(20 * time.Second):
		t.Fatal("the job did not end")
	}
	out := s.stdout.String()
	if s.err != nil || s.exit == nil || s.exit.ExitCode != 4 || !strings.HasPrefix(out, "/dev/pts/") ||
		!strings.Contains(out, "40 100\r\n") || !strings.Contains(out, "hello\r\ngot hello\r\n50 120\r\n") {
		t.Fatalf("session: err %v exit %+v output %q", s.err, s.exit, out)
	}
	if s.stderr.Len() != 0 {
		t.Fatalf("stderr with a tty: %q", s.stderr.String())
	}
	// The log has the terminal's lines, without their carriage returns.
	if got := logText(t, dir); !strings.Contains(got, "stdout:got hello\nstdout:50 120") {
		t.Fatalf("log %q", got)
	}
}

func waitLog(t *testing.T, dir, want string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if strings.Contains(logText(t, dir), want) {
			return
		}
	}
	t.Fatalf("log never had %q: %q", want, logText(t, dir))
}
