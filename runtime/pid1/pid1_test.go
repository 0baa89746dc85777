package pid1

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the test binary stand in for `pier init`: run as
// "<test binary> init ARGS", it is the init.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == Subcommand {
		os.Exit(Main(os.Args[2:], nil))
	}
	os.Exit(m.Run())
}

// pid1 is a process started as PID 1 of a new PID namespace.
type pid1 struct {
	cmd    *exec.Cmd
	status *os.File      // the read end of its status pipe, as fd 3
	done   chan struct{} // closed when it exited; cmd.ProcessState is set then
}

// startPID1 starts argv as PID 1 of a new PID namespace, with a status
// pipe as fd 3. Killing it kills the namespace; the test does so when it
// ends, however it ends.
func startPID1(t *testing.T, argv ...string) *pid1 {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	p := &pid1{cmd: exec.Command(argv[0], argv[1:]...), status: r, done: make(chan struct{})}
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID, Pdeathsig: syscall.SIGKILL}
	p.cmd.Stdout, p.cmd.Stderr = os.Stderr, os.Stderr
	p.cmd.ExtraFiles = []*os.File{w}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %v in a new PID namespace (needs root): %v", argv, err)
	}
	w.Close()
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// init starts the test binary as the init of argv, reporting on fd 3.
func startInit(t *testing.T, argv ...string) *pid1 {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return startPID1(t, Args(self, StatusFD, argv)...)
}

// stopsWithin sends SIGTERM and reports whether the process exits within d.
func (p *pid1) stopsWithin(d time.Duration) bool {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return true
	case <-time.After(d):
		return false
	}
}

// children are the PIDs whose parent is pid, with their states.
func children(pid int) map[int]byte {
	out := map[int]byte{}
	tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/children")
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		for _, f := range strings.Fields(string(b)) {
			c, err := strconv.Atoi(f)
			if err != nil {
				continue
			}
			stat, _ := os.ReadFile("/proc/" + f + "/stat")
			if i := strings.LastIndexByte(string(stat), ')'); i >= 0 && i+2 < len(stat) {
				out[c] = stat[i+2]
			}
		}
	}
	return out
}

// A command that ignores SIGTERM as PID 1 stops at SIGTERM under the
// init, which also reaps the orphans it adopts, exits as the command
// did and reports on its status pipe that a signal killed it.
func TestInitStopsCommandAndReaps(t *testing.T) {
	// The problem: sleep as PID 1 ignores SIGTERM.
	bare := startPID1(t, "/bin/sleep", "100")
	time.Sleep(100 * time.Millisecond)
	if bare.stopsWithin(500 * time.Millisecond) {
		t.Fatal("sleep as PID 1 stopped at SIGTERM: PID 1 has default signal actions here, so this test shows nothing")
	}

	// The subshell's sleep is orphaned at once, adopted by PID 1, and
	// ends 0.2 s later.
	p := startInit(t, "sh", "-c", "(sleep 0.2 &); exec sleep 100")
	time.Sleep(time.Second)
	kids := children(p.cmd.Process.Pid)
	if len(kids) != 1 {
		t.Fatalf("children of the init after the orphan ended: %v, want the command alone (an unreaped orphan stays as a zombie)", kids)
	}
	for c, state := range kids {
		if state != 'S' && state != 'R' {
			t.Fatalf("the command (%d) is in state %c", c, state)
		}
	}
	start := time.Now()
	if !p.stopsWithin(5 * time.Second) {
		t.Fatal("the init did not stop at SIGTERM")
	}
	t.Logf("stopped %v after SIGTERM", time.Since(start).Round(time.Millisecond))
	if code := p.cmd.ProcessState.ExitCode(); code != 128+int(syscall.SIGTERM) {
		t.Errorf("exit code %d, want %d (the command's: killed by SIGTERM)", code, 128+int(syscall.SIGTERM))
	}
	ws, ok, err := ReadStatus(p.status)
	if !ok || err != nil || !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
		t.Errorf("status %v (ok %v, err %v), want killed by SIGTERM", ws, ok, err)
	}
}

// The command's own exit code comes through, as the init's exit code and
// on the status pipe.
func TestInitExitCode(t *testing.T) {
	p := startInit(t, "/bin/sh", "-c", "exit 7")
	<-p.done
	if code := p.cmd.ProcessState.ExitCode(); code != 7 {
		t.Errorf("exit code %d, want 7", code)
	}
	ws, ok, err := ReadStatus(p.status)
	if !ok || err != nil || !ws.Exited() || ws.ExitStatus() != 7 {
		t.Errorf("status %v (ok %v, err %v), want exit 7", ws, ok, err)
	}
}

// A command that cannot be started is an error on the status pipe, not an
// exit code that a command might have chosen.
func TestInitCommandNotFound(t *testing.T) {
	p := startInit(t, "no-such-command-here")
	<-p.done
	if code := p.cmd.ProcessState.ExitCode(); code != 127 {
		t.Errorf("exit code %d, want 127", code)
	}
	_, ok, err := ReadStatus(p.status)
	if ok || err == nil || !strings.Contains(err.Error(), "exec no-such-command-here: executable file not found in $PATH") {
		t.Errorf("ok %v, err %v, want the command's name and not found", ok, err)
	}
}

// The status pipe is the init's alone: the command does not hold it, so
// the reader sees its end as soon as the init is gone, even while a
// process that escaped it lives on.
func TestInitStatusNotInherited(t *testing.T) {
	p := startInit(t, "/bin/sh", "-c", "test ! -e /proc/self/fd/3")
	<-p.done
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("the command holds fd 3 (exit %d)", code)
	}
}

func TestMainUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"--"}, {"--status-fd=x", "--", "true"}, {"--bogus", "--", "true"}} {
		if code := Main(args, nil); code != 2 {
			t.Errorf("Main(%q) = %d, want 2", args, code)
		}
	}
}

func TestArgs(t *testing.T) {
	got := strings.Join(Args("/.pier/pier", 3, []string{"sh", "-c", "x"}), " ")
	if want := "/.pier/pier init --status-fd=3 -- sh -c x"; got != want {
		t.Errorf("Args = %q, want %q", got, want)
	}
	if got := strings.Join(Args("/p", -1, []string{"a"}), " "); got != "/p init -- a" {
		t.Errorf("Args without status = %q", got)
	}
}
