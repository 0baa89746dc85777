package fake

import (
	"context"
	"errors"
	"io"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/pierpaas/pier/runtime"

	"github.com/pierpaas/pier/internal/testutil"
)

type ran struct {
	exit runtime.Exit
	err  error
}

func start(t *testing.T, f *Runtime, ctx context.Context, spec runtime.Spec, sio runtime.IO) <-chan ran {
	t.Helper()
	done := make(chan ran, 1)
	go func() {
		ex, err := f.Run(ctx, spec, sio, nil)
		done <- ran{ex, err}
	}()
	wctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := f.WaitStarted(wctx, spec.ID); err != nil {
		t.Fatalf("WaitStarted(%s): %v", spec.ID, err)
	}
	return done
}

func wait(t *testing.T, done <-chan ran) ran {
	t.Helper()
	select {
	case r := <-done:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
		return ran{}
	}
}

func spec(id string) runtime.Spec { return runtime.Spec{ID: id, Args: []string{"web"}} }

func TestExitCodesAndOOM(t *testing.T) {
	f := New()
	ctx := context.Background()
	a := start(t, f, ctx, spec("a"), runtime.IO{})
	b := start(t, f, ctx, spec("b"), runtime.IO{})
	c := start(t, f, ctx, spec("c"), runtime.IO{})
	if got := f.Running(); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("Running() = %v", got)
	}
	if s, ok := f.Spec("a"); !ok || s.Args[0] != "web" {
		t.Errorf("Spec(a) = %+v, %v", s, ok)
	}
	f.Exit("a", 3)
	f.OOM("b")
	f.Kill("c", syscall.SIGSEGV)
	if r := wait(t, a); r.err != nil || r.exit.Code != 3 || r.exit.Signal != "" || r.exit.Started.IsZero() {
		t.Errorf("a: %+v", r)
	}
	if r := wait(t, b); !r.exit.OOMKilled || r.exit.Signal != "SIGKILL" || r.exit.Code != 137 {
		t.Errorf("b: %+v", r)
	}
	if r := wait(t, c); r.exit.Signal != "SIGSEGV" || r.exit.Code != 139 {
		t.Errorf("c: %+v", r)
	}
	if ids, _ := f.List(); len(ids) != 0 {
		t.Errorf("List() after exits = %v", ids)
	}
	if err := f.Exit("a", 0); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("Exit of a stopped job = %v", err)
	}
}

func TestSignalsCancelDelete(t *testing.T) {
	f := New()
	ctx, cancel := context.WithCancel(context.Background())
	term := start(t, f, context.Background(), spec("term"), runtime.IO{})
	stubborn := start(t, f, context.Background(), spec("stubborn"), runtime.IO{})
	cancelled := start(t, f, ctx, spec("cancelled"), runtime.IO{})
	deleted := start(t, f, context.Background(), spec("deleted"), runtime.IO{})
	f.Stubborn("stubborn")

	f.Signal("term", syscall.SIGQUIT) // recorded, survives
	f.Signal("term", syscall.SIGTERM)
	if r := wait(t, term); r.exit.Signal != "SIGTERM" {
		t.Errorf("term: %+v", r)
	}
	if got := f.Signals("term"); !slices.Equal(got, []syscall.Signal{syscall.SIGQUIT, syscall.SIGTERM}) {
		t.Errorf("Signals = %v", got)
	}
	f.Signal("stubborn", syscall.SIGTERM)
	if got := f.Running(); !slices.Contains(got, "stubborn") {
		t.Errorf("a stubborn job died of SIGTERM: %v", got)
	}
	f.Signal("stubborn", syscall.SIGKILL)
	if r := wait(t, stubborn); r.exit.Signal != "SIGKILL" {
		t.Errorf("stubborn: %+v", r)
	}
	cancel()
	if r := wait(t, cancelled); r.err != nil || r.exit.Signal != "SIGKILL" {
		t.Errorf("cancelled: %+v", r)
	}
	if err := f.Delete("deleted"); err != nil {
		t.Fatal(err)
	}
	if r := wait(t, deleted); r.exit.Signal != "SIGKILL" {
		t.Errorf("deleted: %+v", r)
	}
	if err := f.Signal("gone", syscall.SIGTERM); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("Signal(gone) = %v", err)
	}
	if err := f.WaitStopped(context.Background(), "deleted"); err != nil {
		t.Error(err)
	}
}

func TestStartFailuresAndLeftovers(t *testing.T) {
	f := New()
	ctx := context.Background()
	boom := errors.New("boom")
	f.FailNext("x", boom)
	if _, err := f.Run(ctx, spec("x"), runtime.IO{}, nil); !errors.Is(err, boom) {
		t.Errorf("Run = %v, want boom", err)
	}
	if _, err := f.Run(ctx, runtime.Spec{ID: "Bad ID", Args: []string{"x"}}, runtime.IO{}, nil); !errors.Is(err, runtime.ErrInvalidSpec) {
		t.Errorf("bad id: %v", err)
	}
	running := start(t, f, ctx, spec("x"), runtime.IO{})
	if _, err := f.Run(ctx, spec("x"), runtime.IO{}, nil); !errors.Is(err, runtime.ErrExists) {
		t.Errorf("second Run = %v, want ErrExists", err)
	}
	f.Leftover("old")
	if ids, _ := f.List(); !slices.Equal(ids, []string{"old", "x"}) {
		t.Errorf("List() = %v", ids)
	}
	f.Delete("old")
	f.Exit("x", 0)
	wait(t, running)
	if ids, _ := f.List(); len(ids) != 0 {
		t.Errorf("List() = %v", ids)
	}
}

func TestOutputAndConsole(t *testing.T) {
	f := New()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Now = func() time.Time { return now }
	var out, errb testutil.SyncBuffer
	done := start(t, f, context.Background(), spec("logs"), runtime.IO{Stdout: &out, Stderr: &errb})
	if err := f.Write("logs", "hello\n", "oops\n"); err != nil {
		t.Fatal(err)
	}
	f.Exit("logs", 0)
	r := wait(t, done)
	if out.String() != "hello\n" || errb.String() != "oops\n" || !r.exit.Started.Equal(now) || !r.exit.Finished.Equal(now) {
		t.Errorf("out %q err %q exit %+v", out.String(), errb.String(), r.exit)
	}

	got := make(chan string, 1)
	s := spec("tty")
	s.TTY = true
	done = start(t, f, context.Background(), s, runtime.IO{Console: func(m *os.File) {
		go func() { b, _ := io.ReadAll(m); m.Close(); got <- string(b) }()
	}})
	f.Write("tty", "prompt$ ", "")
	f.Exit("tty", 0)
	wait(t, done)
	if s := <-got; s != "prompt$ " {
		t.Errorf("console read %q", s)
	}
}
