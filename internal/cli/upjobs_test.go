package cli_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/client"
	"github.com/pierpaas/pier/host/agent"
	"github.com/pierpaas/pier/internal/server"
	"github.com/pierpaas/pier/scheduler"
	"github.com/pierpaas/pier/store"
)

// TestUpRunsFormations drives a real `pier up`: a formation written to
// the store becomes real containers through the scheduler and the host
// agent, and a container killed from outside is replaced with its slot's
// restart count raised.
func TestUpRunsFormations(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	ports := freeUpPorts(t)
	p := startUp(t, dataDir, ports)
	t.Cleanup(func() { cleanupHost(filepath.Join(dataDir, "host")) })

	cl, err := client.Connect(client.Config{Endpoints: []string{p.etcdURL}, CredentialsDir: server.PKIDir(dataDir)})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rel := api.Release{ID: "v1", App: "ticker", Version: 1, CreatedAt: time.Now(), Processes: map[string]api.ProcessType{
		"worker": {Args: []string{"sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done"},
			Resources: api.Resources{MemoryMB: 32}, StopGrace: api.Duration(time.Second)},
	}}
	if _, err := store.Put(ctx, cl.Etcd, store.ReleasesPrefix+"v1", rel); err != nil {
		t.Fatal(err)
	}
	fkey, _ := store.Key(store.FormationsPrefix, "ticker", "v1")
	scale := func(n int) {
		f := api.Formation{App: "ticker", Release: "v1", Processes: map[string]int{"worker": n}, UpdatedAt: time.Now()}
		if _, err := store.Put(ctx, cl.Etcd, fkey, f); err != nil {
			t.Fatal(err)
		}
	}
	running := func() []scheduler.JobView {
		s, err := scheduler.Load(ctx, cl.Etcd, scheduler.Config{})
		if err != nil {
			t.Fatal(err)
		}
		var out []scheduler.JobView
		for _, j := range s.Jobs {
			if j.Job.App == "ticker" && j.Job.Desired == api.DesiredRunning && j.Status != nil && j.Status.State == api.JobRunning {
				out = append(out, j)
			}
		}
		return out
	}
	scale(2)
	waitFor(t, "2 running workers", func() bool { return len(running()) == 2 })

	victim := running()[0]
	if err := syscall.Kill(victim.Status.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a replacement", func() bool {
		jobs := running()
		if len(jobs) != 2 {
			return false
		}
		for _, j := range jobs {
			if j.Job.ID == victim.Job.ID {
				return false
			}
		}
		return true
	})
	restarted := false
	for _, j := range running() {
		if j.Job.Restarts == 1 {
			restarted = true
		}
	}
	if !restarted {
		t.Fatalf("no job carries the restart: %+v", running())
	}

	// pier up stops; the jobs go on, and pier down stops them (refused
	// while pier up runs: its agent would only start them again).
	if out, err := exec.Command(pierBin, "down", "--data-dir", dataDir).CombinedOutput(); err == nil || !strings.Contains(string(out), "pier is running on") {
		t.Fatalf("pier down while pier up runs: %v\n%s", err, out)
	}
	var pids []int
	for _, j := range running() {
		pids = append(pids, j.Status.PID)
	}
	p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("pier up did not stop within 30s of Ctrl-C")
	}
	if !strings.Contains(p.stderr.String(), "the apps' jobs keep running") {
		t.Errorf("pier up did not say the jobs keep running:\n%s", p.stderr)
	}
	alive := func(pid int) bool { return syscall.Kill(pid, 0) == nil }
	for _, pid := range pids {
		if !alive(pid) {
			t.Fatalf("job process %d ended with pier up", pid)
		}
	}
	out, err := exec.Command(pierBin, "down", "--data-dir", dataDir).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Stopped 2 jobs") {
		t.Fatalf("pier down: %v\n%s", err, out)
	}
	for _, pid := range pids {
		waitFor(t, "the job's process to go", func() bool { return !alive(pid) })
	}
}

// cleanupHost removes every container and shim a host data directory
// still has, whatever a test left behind.
func cleanupHost(hostDir string) { agent.Purge(hostDir) }
