package agent

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/host/joblog"
	"github.com/pierpaas/pier/host/jobnet"
	"github.com/pierpaas/pier/host/shim"
	"github.com/pierpaas/pier/store/storetest"
)

var (
	buildOnce sync.Once
	pierBin   string
	buildErr  error
)

// pierBinary builds the pier binary once: real shims are re-executions of it.
func pierBinary(t *testing.T) string {
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "pier-agent-test")
		if err != nil {
			buildErr = err
			return
		}
		pierBin = filepath.Join(dir, "pier")
		out, err := exec.Command("go", "build", "-o", pierBin, "../../cmd/pier").CombinedOutput()
		if err != nil {
			buildErr = err
			pierBin = string(out)
		}
	})
	if buildErr != nil {
		t.Fatalf("build pier: %v\n%s", buildErr, pierBin)
	}
	return pierBin
}

// runcHost is a host that runs real containers through real shims.
func runcHost(t *testing.T, c *storetest.Cluster, id string) Config {
	cfg := testHost(t, c, id)
	cfg.Runtime = "runc"
	cfg.Launcher = ExecLauncher{Binary: pierBinary(t)}
	// Bound into every container: the init, the slug runner.
	cfg.PierBinary = pierBinary(t)
	// Whatever happens, leave no container, shim or mount behind.
	t.Cleanup(func() {
		powerOff(cfg)
		jobnet.ReleaseAll(NetNSDir(cfg.DataDir))
		jobnet.Remove(jobnet.TagFor(cfg.DataDir))
	})
	return cfg
}

// powerOff kills a runc host's shims and containers, as a power cut
// would: the agent must be stopped first.
func powerOff(cfg Config) error {
	shim.KillAll(cfg.jobsDir())
	rt, err := NewRuntime("runc", cfg.runtimeDir(), cfg.Log)
	if err != nil {
		return err
	}
	ids, err := rt.List()
	for _, id := range ids {
		err = errors.Join(err, rt.Delete(id))
	}
	return err
}

// TestAgentRestartsKeepJobsRunning kills the agent ten times while a real
// container runs: the job keeps its pid, is never restarted, loses no log
// line, and is reported running after each restart.
func TestAgentRestartsKeepJobsRunning(t *testing.T) {
	c := storetest.NewCluster(t, 1)
	cfg := runcHost(t, c, "h1")
	a := startAgent(t, cfg)
	putJob(t, c, api.Job{ID: "ticker", HostID: "h1", Resources: api.Resources{MemoryMB: 64},
		Args: []string{"sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done"}})
	first := waitStatus(t, c, "ticker", inState(api.JobRunning))
	if first.PID == 0 {
		t.Fatal("running without a pid")
	}
	for i := 0; i < 10; i++ {
		a.Close()
		if err := syscall.Kill(first.PID, 0); err != nil {
			t.Fatalf("restart %d: job died with its agent: %v", i, err)
		}
		time.Sleep(200 * time.Millisecond) // the job goes on printing meanwhile
		a = startAgent(t, cfg)
		a.mu.Lock()
		adopted := a.workers["ticker"] != nil
		a.mu.Unlock()
		if !adopted {
			t.Fatalf("restart %d: the job was not re-adopted", i)
		}
		st := waitStatus(t, c, "ticker", inState(api.JobRunning))
		if st.PID != first.PID || !st.StartedAt.Equal(first.StartedAt) {
			t.Fatalf("restart %d: job restarted: pid %d→%d", i, first.PID, st.PID)
		}
	}
	// The log has every tick, in order, with none missing.
	var lines []string
	joblog.Read(shim.LogDir(a.jobDir("ticker")), 0, func(l joblog.Line) error {
		lines = append(lines, l.Text)
		return nil
	})
	if len(lines) < 10 {
		t.Fatalf("only %d log lines", len(lines))
	}
	for i, l := range lines {
		if l != "tick "+itoa(i) {
			t.Fatalf("line %d is %q", i, l)
		}
	}
	putJob(t, c, api.Job{ID: "ticker", HostID: "h1", Args: []string{"sh"}, Desired: api.DesiredShutdown, StopGrace: api.Duration(time.Second)})
	st := waitStatus(t, c, "ticker", inState(api.JobShutdown))
	if syscall.Kill(first.PID, 0) == nil {
		t.Fatalf("job still alive after shutdown: %+v", st)
	}
}

// TestExitWhileAgentDown: a job that ends while no agent runs is reported
// with its real exit code by the next agent.
func TestExitWhileAgentDown(t *testing.T) {
	c := storetest.NewCluster(t, 1)
	cfg := runcHost(t, c, "h1")
	a := startAgent(t, cfg)
	putJob(t, c, api.Job{ID: "short", HostID: "h1", Args: []string{"sh", "-c", "sleep 2; exit 7"}})
	waitStatus(t, c, "short", inState(api.JobRunning))
	a.Close()
	time.Sleep(3 * time.Second)
	startAgent(t, cfg)
	st := waitStatus(t, c, "short", inState(api.JobFailed))
	if st.ExitCode == nil || *st.ExitCode != 7 {
		t.Fatalf("status %+v", st)
	}
}

func TestOutOfMemoryReported(t *testing.T) {
	c := storetest.NewCluster(t, 1)
	cfg := runcHost(t, c, "h1")
	startAgent(t, cfg)
	putJob(t, c, api.Job{ID: "hog", HostID: "h1", Resources: api.Resources{MemoryMB: 32},
		Args: []string{"python3", "-c", "b = bytearray(256*1024*1024); print(len(b))"}})
	st := waitStatus(t, c, "hog", func(s api.JobStatus) bool { return s.State.Terminal() })
	if st.State != api.JobFailed || st.Error != "out of memory" {
		t.Fatalf("status %+v", st)
	}
}

// TestStopIsPrompt: a job whose command ignores SIGTERM as PID 1 stops
// at once, well within its grace period, because pier init is its PID 1
// and passes the SIGTERM on; an orphan it adopts is reaped; a job that
// ends by itself keeps its exit code, and a signal that kills one is
// reported.
func TestStopIsPrompt(t *testing.T) {
	c := storetest.NewCluster(t, 1)
	cfg := runcHost(t, c, "h1")
	startAgent(t, cfg)
	for _, tc := range []struct{ id, cmd string }{
		{"python", "exec python3 -m http.server $PORT"},
		{"sleep", "sleep 1000"},
	} {
		job := api.Job{ID: tc.id, HostID: "h1", Ports: []api.Port{{Proto: "tcp"}}, Args: []string{"sh", "-c", tc.cmd}}
		putJob(t, c, job)
		waitStatus(t, c, tc.id, inState(api.JobRunning))
		time.Sleep(500 * time.Millisecond) // python has bound its port
		start := time.Now()
		job.Desired, job.StopGrace = api.DesiredShutdown, api.Duration(10*time.Second)
		putJob(t, c, job)
		st := waitStatus(t, c, tc.id, inState(api.JobShutdown))
		took := time.Since(start)
		t.Logf("%s (sh -c %q) stopped in %v (grace 10s): signal %q, exit code %v", tc.id, tc.cmd, took.Round(time.Millisecond), st.Signal, *st.ExitCode)
		if took > 5*time.Second {
			t.Errorf("%s took %v to stop: it waited out the grace period", tc.id, took)
		}
		if st.Signal != "SIGTERM" {
			t.Errorf("%s: status %+v, want killed by SIGTERM", tc.id, st)
		}
	}

	// The command is not PID 1, and the orphan it leaves is reaped before
	// the command ends with its own exit code.
	putJob(t, c, api.Job{ID: "orphans", HostID: "h1", Args: []string{"sh", "-c",
		`test $$ != 1 || exit 9; (sleep 0.2 &); sleep 1; for f in /proc/[0-9]*/stat; do read -r l < "$f"; case "$l" in *") Z "*) exit 8;; esac; done; exit 7`}})
	st := waitStatus(t, c, "orphans", func(s api.JobStatus) bool { return s.State.Terminal() })
	if st.ExitCode == nil || *st.ExitCode != 7 || st.Signal != "" || st.Error != "exit status 7" {
		t.Errorf("status %+v, want exit status 7 (8: a zombie was left; 9: the command was PID 1)", st)
	}
	putJob(t, c, api.Job{ID: "killed", HostID: "h1", Args: []string{"sh", "-c", "kill -TERM $$"}})
	st = waitStatus(t, c, "killed", func(s api.JobStatus) bool { return s.State.Terminal() })
	if st.Signal != "SIGTERM" || st.Error != "killed by SIGTERM" {
		t.Errorf("status %+v, want killed by SIGTERM", st)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
