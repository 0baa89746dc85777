package runtime

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pierpaas/pier/internal/testutil"
)

func newTestProcess(t *testing.T) *Process {
	t.Helper()
	var logs bytes.Buffer
	p := NewProcess(slog.New(slog.NewTextHandler(&logs, nil)))
	if !strings.Contains(logs.String(), "WITHOUT ANY ISOLATION") || !strings.Contains(logs.String(), "level=WARN") {
		t.Errorf("no loud warning at construction: %q", logs.String())
	}
	// Processes a job leaves behind are killed, and if this test process
	// is a subreaper (the runc tests make it one) they become its children
	// and must be reaped here.
	t.Cleanup(func() {
		time.Sleep(50 * time.Millisecond)
		for _, z := range zombieChildren() {
			var ws syscall.WaitStatus
			_, _ = syscall.Wait4(z, &ws, syscall.WNOHANG, nil)
		}
	})
	return p
}

func TestProcessRun(t *testing.T) {
	p := newTestProcess(t)
	app := t.TempDir()
	os.Mkdir(filepath.Join(app, "sub"), 0o755)
	res := run(t, p, Spec{ID: testID(t), AppDir: app, Dir: "/app/sub", Env: []string{"FOO=bar"},
		Args: []string{"/bin/sh", "-c", `echo "$FOO $(pwd) $HOME"; echo err >&2; exit 3`}})
	if res.err != nil || res.exit.Code != 3 || res.stderr != "err\n" || res.pid <= 0 {
		t.Fatalf("%+v", res)
	}
	if want := "bar " + filepath.Join(app, "sub") + " " + app + "\n"; res.stdout != want {
		t.Errorf("stdout %q, want %q", res.stdout, want)
	}
	if ids, _ := p.List(); len(ids) != 0 {
		t.Errorf("List() after Run = %v", ids)
	}
	res = run(t, p, Spec{ID: testID(t), Args: []string{"/no/such/binary"}})
	if res.err == nil {
		t.Errorf("missing binary: %+v", res.exit)
	}
	for name, s := range map[string]Spec{
		"image":  {ID: "x", Args: []string{"true"}, RootFS: []string{"/x"}},
		"mounts": {ID: "x", Args: []string{"true"}, Mounts: []Mount{{Source: "/a", Destination: "/b"}}},
	} {
		if _, err := p.Run(context.Background(), s, IO{}, nil); !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: %v, want ErrUnsupported", name, err)
		}
	}
}

// TestProcessKillsGroup checks that what a job started dies with it,
// whether the job exits by itself or is cancelled.
func TestProcessKillsGroup(t *testing.T) {
	p := newTestProcess(t)
	res := run(t, p, Spec{ID: testID(t), Args: []string{"/bin/sh", "-c", "sleep 60 & echo $!"}})
	child, _ := strconv.Atoi(strings.TrimSpace(res.stdout))
	if res.err != nil || child == 0 {
		t.Fatalf("%+v", res)
	}
	waitDead(t, child)

	ctx, cancel := context.WithCancel(context.Background())
	var out testutil.SyncBuffer
	done := make(chan Exit, 1)
	id := testID(t)
	go func() {
		ex, _ := p.Run(ctx, Spec{ID: id, Args: []string{"/bin/sh", "-c", "sleep 60 & echo $!; wait"}}, IO{Stdout: &out}, nil)
		done <- ex
	}()
	for !strings.Contains(out.String(), "\n") {
		time.Sleep(10 * time.Millisecond)
	}
	if ids, _ := p.List(); len(ids) != 1 || ids[0] != id {
		t.Errorf("List() = %v", ids)
	}
	child, _ = strconv.Atoi(strings.TrimSpace(out.String()))
	cancel()
	select {
	case ex := <-done:
		if ex.Signal != "SIGKILL" {
			t.Errorf("cancelled: %+v", ex)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("cancel did not end Run")
	}
	waitDead(t, child)
}

func TestProcessSignalAndDelete(t *testing.T) {
	p := newTestProcess(t)
	id := testID(t)
	started := make(chan int, 1)
	done := make(chan Exit, 1)
	go func() {
		ex, _ := p.Run(context.Background(), Spec{ID: id, Args: []string{"/bin/sh", "-c", `trap "exit 7" TERM; while :; do sleep 0.05; done`}},
			IO{}, func(pid int) { started <- pid })
		done <- ex
	}()
	<-started
	time.Sleep(200 * time.Millisecond)
	if err := p.Signal(id, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if ex := <-done; ex.Code != 7 {
		t.Errorf("after SIGTERM: %+v", ex)
	}
	if err := p.Signal(id, syscall.SIGTERM); !errors.Is(err, ErrNotFound) {
		t.Errorf("Signal after exit = %v", err)
	}

	go func() {
		ex, _ := p.Run(context.Background(), Spec{ID: id, Args: []string{"sleep", "60"}}, IO{}, func(pid int) { started <- pid })
		done <- ex
	}()
	<-started
	if err := p.Delete(id); err != nil {
		t.Fatal(err)
	}
	if ex := <-done; ex.Signal != "SIGKILL" {
		t.Errorf("after Delete: %+v", ex)
	}
	if err := p.Delete(id); err != nil {
		t.Errorf("second Delete: %v", err)
	}
}

func TestProcessTTY(t *testing.T) {
	p := newTestProcess(t)
	res := run(t, p, Spec{ID: testID(t), TTY: true, Args: []string{"/bin/sh", "-c", "tty; echo $TERM"}})
	if res.err != nil || !strings.HasPrefix(res.stdout, "/dev/pts/") || !strings.Contains(res.stdout, "xterm") {
		t.Errorf("%+v", res)
	}
}

func TestProcessTTYSize(t *testing.T) {
	p := newTestProcess(t)
	res := run(t, p, Spec{ID: testID(t), TTY: true, ConsoleSize: ConsoleSize{Rows: 40, Cols: 100}, Args: []string{"stty", "size"}})
	if res.err != nil || strings.TrimSpace(res.stdout) != "40 100" {
		t.Errorf("%+v", res)
	}
}

func waitDead(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		// A zombie counts as dead: it runs nothing.
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil || strings.Contains(string(b), ") Z ") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d survived its job", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
