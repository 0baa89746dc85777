package runtime

import (
	"bytes"
	"context"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pierpaas/pier/runtime/pid1"
)

// TestMain lets the test binary stand in for `pier init` inside
// containers: bound in at testInit and run as "testInit init ...".
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == pid1.Subcommand {
		os.Exit(pid1.Main(os.Args[2:], nil))
	}
	os.Exit(m.Run())
}

// testInit is where the tests bind their own binary, as the host agent
// binds pier's.
const testInit = "/.pier/pier"

// withInit runs the job under the test binary as its init.
func withInit(t testing.TB) func(*Spec) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return func(s *Spec) {
		s.Init = testInit
		s.Mounts = append(s.Mounts, Mount{Source: self, Destination: testInit, ReadOnly: true})
	}
}

// stopTime runs args as a job, sends it SIGTERM once it runs, and returns
// how long it took to end, and how it ended.
func stopTime(t *testing.T, r *Runc, wait time.Duration, args []string, mod ...func(*Spec)) (time.Duration, Exit) {
	t.Helper()
	spec := Spec{ID: testID(t), Args: args}
	for _, m := range mod {
		m(&spec)
	}
	expectClean(t, r, spec.ID)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	started := make(chan int, 1)
	done := make(chan result, 1)
	go func() {
		var res result
		res.exit, res.err = r.Run(ctx, spec, IO{Stdout: io.Discard, Stderr: io.Discard}, func(pid int) { started <- pid })
		done <- res
	}()
	select {
	case <-started:
	case res := <-done:
		t.Fatalf("%q ended before it was stopped: %+v %v", args, res.exit, res.err)
	}
	// The app is up (python has bound its port, sh has started sleep).
	time.Sleep(500 * time.Millisecond)
	start := time.Now()
	if err := r.Signal(spec.ID, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case res := <-done:
		if res.err != nil {
			t.Fatalf("%q: %v", args, res.err)
		}
		return time.Since(start), res.exit
	case <-time.After(wait):
		// What an app that ignores SIGTERM as PID 1 does until the grace
		// period ends and the agent kills it.
		cancel()
		<-done
		return time.Since(start), Exit{}
	}
}

// Commands that install no SIGTERM handler stop at once under the init
// (and would not without it), and are reported as killed by SIGTERM.
func TestRuncInitStopsPromptly(t *testing.T) {
	r := newTestRunc(t)
	for _, args := range [][]string{
		{"python3", "-m", "http.server", "0"},
		{"sh", "-c", "sleep 1000"},
	} {
		t.Run(args[0], func(t *testing.T) {
			took, ex := stopTime(t, r, 5*time.Second, args, withInit(t))
			t.Logf("%q under pier init stopped %v after SIGTERM: %+v", args, took.Round(time.Millisecond), ex)
			killed := ex.Signal == "SIGTERM" && ex.Code == 128+int(syscall.SIGTERM)
			// A SIGTERM that reaches sh before it has started its command
			// (a loaded machine) may end it with its own status instead:
			// stopped at once all the same, which is what this is about.
			if args[0] == "sh" && ex.Signal == "" && ex.Code != 0 {
				killed = true
			}
			if took > 4*time.Second || !killed {
				t.Errorf("stop took %v and ended %+v, want at once, killed by SIGTERM", took, ex)
			}
		})
	}
	t.Run("without init", func(t *testing.T) {
		// The problem the init solves, so that this test shows something.
		took, ex := stopTime(t, r, 2*time.Second, []string{"sleep", "1000"})
		t.Logf("sleep as PID 1 stopped %v after SIGTERM: %+v", took.Round(time.Millisecond), ex)
		if ex.Signal == "SIGTERM" {
			t.Errorf("sleep as PID 1 died of SIGTERM: the kernel gave PID 1 default signal actions, so this test shows nothing")
		}
	})
}

// Under the init the command is not PID 1, orphans it adopts are reaped,
// and the command's exit code is the job's.
func TestRuncInitReapsAndExits(t *testing.T) {
	r := newTestRunc(t)
	// The subshell's sleep is orphaned at once and adopted by the init;
	// once it has ended, no process of the job is a zombie.
	res := sh(t, r, `echo pid=$$; (sleep 0.2 &); sleep 1
for f in /proc/[0-9]*/stat; do read -r l < "$f" && echo "$l"; done; exit 7`, withInit(t))
	if res.exit.Code != 7 || res.exit.Signal != "" {
		t.Errorf("exit %+v, want 7", res.exit)
	}
	if !strings.Contains(res.stdout, "pid=") || strings.Contains(res.stdout, "pid=1\n") {
		t.Errorf("the command runs as %q, want a pid other than 1", strings.SplitN(res.stdout, "\n", 2)[0])
	}
	if !strings.Contains(res.stdout, "1 (") {
		t.Errorf("no PID 1 in the job's processes:\n%s", res.stdout)
	}
	for line := range strings.Lines(res.stdout) {
		if strings.Contains(line, ") Z ") {
			t.Errorf("a zombie in the job: %s", line)
		}
	}
	t.Run("stdin", func(t *testing.T) {
		id := testID(t)
		expectClean(t, r, id)
		spec := Spec{ID: id, Args: []string{"cat"}}
		withInit(t)(&spec)
		var out bytes.Buffer
		ex, err := r.Run(context.Background(), spec, IO{Stdin: strings.NewReader("hello\n"), Stdout: &out, Stderr: &out}, nil)
		if err != nil || ex.Code != 0 || out.String() != "hello\n" {
			t.Errorf("cat: %+v %v %q", ex, err, out.String())
		}
	})
	t.Run("not found", func(t *testing.T) {
		id := testID(t)
		expectClean(t, r, id)
		spec := Spec{ID: id, Args: []string{"no-such-binary"}}
		withInit(t)(&spec)
		res := run(t, r, spec)
		t.Logf("error: %v", res.err)
		if res.err == nil || !strings.Contains(res.err.Error(), "no-such-binary") {
			t.Errorf("running a missing binary: %+v %v, want an error naming it", res.exit, res.err)
		}
	})
	t.Run("killed", func(t *testing.T) {
		res := sh(t, r, "kill -KILL $$", withInit(t))
		if res.exit.Signal != "SIGKILL" || res.exit.Code != 137 {
			t.Errorf("exit %+v, want killed by SIGKILL", res.exit)
		}
	})
	t.Run("init killed", func(t *testing.T) {
		// A cancelled Run kills the init before it can report: the job is
		// reported as killed by SIGKILL, as without it.
		id := testID(t)
		expectClean(t, r, id)
		spec := Spec{ID: id, Args: []string{"sleep", "100"}}
		withInit(t)(&spec)
		ctx, cancel := context.WithCancel(context.Background())
		ex, err := r.Run(ctx, spec, IO{}, func(int) { time.AfterFunc(300*time.Millisecond, cancel) })
		if err != nil || ex.Signal != "SIGKILL" || ex.Code != 137 {
			t.Errorf("Run = %+v, %v; want killed by SIGKILL", ex, err)
		}
	})
}

// A terminal's job reads it from the init's child: the child's process
// group is the terminal's foreground, so it reads without SIGTTIN and
// gets the terminal's signals.
func TestRuncInitTTY(t *testing.T) {
	r := newTestRunc(t)
	id := testID(t)
	expectClean(t, r, id)
	// exec: the ^C goes to the terminal's foreground group, the command;
	// a shell waiting on a child is left to its own rules about SIGINT.
	spec := Spec{ID: id, TTY: true, Args: []string{"/bin/sh", "-c", "tty; read x; echo got $x; exec sleep 100"}}
	withInit(t)(&spec)
	got := make(chan string, 1)
	// Bounded: a ^C lost to a terminal not set up yet would leave the
	// job waiting forever.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ex, err := r.Run(ctx, spec, IO{Console: func(m *os.File) {
		go func() {
			defer m.Close()
			// Each step waits for the job to show it is ready for the
			// next: typed too early, a line or a ^C can be lost while the
			// terminal is being set up (and ^C flushes what was typed).
			var out []byte
			waitFor := func(s string) bool {
				buf := make([]byte, 4096)
				for !strings.Contains(string(out), s) {
					n, err := m.Read(buf)
					out = append(out, buf[:n]...)
					if err != nil {
						return false
					}
				}
				return true
			}
			if waitFor("/dev/pts/") {
				_, _ = m.Write([]byte("ping\n"))
				if waitFor("got ping") {
					_, _ = m.Write([]byte{3}) // ^C: SIGINT to the foreground group
				}
			}
			rest, _ := io.ReadAll(m) // ends with EIO when the job is gone
			got <- string(append(out, rest...))
		}()
	}}, nil)
	out := <-got
	if err != nil || ex.Signal != "SIGINT" {
		t.Fatalf("Run = %+v, %v; want killed by the ^C; console output %q", ex, err, out)
	}
	if !strings.Contains(out, "/dev/pts/") || !strings.Contains(out, "got ping") {
		t.Errorf("console output %q", out)
	}
}
