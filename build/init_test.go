package build

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

// pid1 is a process started as PID 1 of a new PID namespace.
type pid1 struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when it exited; cmd.ProcessState is set then
}

// startPID1 starts argv as PID 1 of a new PID namespace. Killing it
// kills the namespace; the test does so when it ends, however it ends.
func startPID1(t *testing.T, argv ...string) *pid1 {
	t.Helper()
	p := &pid1{cmd: exec.Command(argv[0], argv[1:]...), done: make(chan struct{})}
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID, Pdeathsig: syscall.SIGKILL}
	p.cmd.Stdout, p.cmd.Stderr = os.Stderr, os.Stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %v in a new PID namespace (needs root): %v", argv, err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	return p
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
// slug runner's init, which also reaps the orphans it adopts and exits
// as the command did.
func TestInitStopsCommandAndReaps(t *testing.T) {
	// The problem: sleep as PID 1 ignores SIGTERM.
	bare := startPID1(t, "/bin/sleep", "100")
	time.Sleep(100 * time.Millisecond)
	if bare.stopsWithin(500 * time.Millisecond) {
		t.Fatal("sleep as PID 1 stopped at SIGTERM: PID 1 has default signal actions here, so this test shows nothing")
	}

	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The subshell's sleep is orphaned at once, adopted by PID 1, and
	// ends 0.2 s later.
	p := startPID1(t, self, "init", "/bin/sh", "-c", "(sleep 0.2 &); exec sleep 100")
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
	if code := p.cmd.ProcessState.ExitCode(); code != 128+int(syscall.SIGTERM) {
		t.Errorf("exit code %d, want %d (the command's: killed by SIGTERM)", code, 128+int(syscall.SIGTERM))
	}
	t.Logf("stopped %v after SIGTERM", time.Since(start).Round(time.Millisecond))

	// The command's own exit code comes through.
	p = startPID1(t, self, "init", "/bin/sh", "-c", "exit 7")
	<-p.done
	if code := p.cmd.ProcessState.ExitCode(); code != 7 {
		t.Errorf("exit code %d, want 7", code)
	}
}
