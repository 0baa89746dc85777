package cli_test

import (
	"crypto/tls"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/internal/testutil"
)

// daemon is a pier process started by a test.
type daemon struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func startDaemon(t *testing.T, args ...string) *daemon {
	t.Helper()
	cmd := exec.Command(pierBin, args...)
	logf, err := os.Create(filepath.Join(t.TempDir(), "daemon.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &daemon{cmd: cmd, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		logf.Close()
		close(d.done)
	}()
	t.Cleanup(func() { d.kill() })
	return d
}

func (d *daemon) kill() {
	d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.done
}

func waitHTTPS(t *testing.T, url string) {
	t.Helper()
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	waitFor(t, url, func() bool {
		resp, err := hc.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

// TestKillNineAgent kills a real `pier host` process with SIGKILL ten
// times while a real container runs: the job keeps its pid and is never
// restarted, its log loses no line, and a job that exits while the agent
// is down is reported with its real exit code once the agent is back.
func TestKillNineAgent(t *testing.T) {
	srvDir, hostDir := filepath.Join(t.TempDir(), "srv"), filepath.Join(t.TempDir(), "host")
	apiPort, hostPort := testutil.FreePort(t), testutil.FreePort(t)
	startDaemon(t, "server", "--data-dir", srvDir, "--name", "s1",
		"--etcd-client-port", strconv.Itoa(testutil.FreePort(t)), "--etcd-peer-port", strconv.Itoa(testutil.FreePort(t)),
		"--api-port", strconv.Itoa(apiPort), "--dns-port", strconv.Itoa(testutil.FreePort(t)))
	waitHTTPS(t, "https://127.0.0.1:"+strconv.Itoa(apiPort)+"/readyz")
	token := strings.TrimSpace(pier(t, "token", "--data-dir", srvDir).stdout)

	t.Cleanup(func() { cleanupHost(hostDir) })
	hostArgs := []string{"host", "--data-dir", hostDir, "--id", "h1", "--host-api-port", strconv.Itoa(hostPort),
		"--port-range", "43000-43099", "--join", "127.0.0.1:" + strconv.Itoa(apiPort), "--token", token}
	host := startDaemon(t, hostArgs...)
	addr := "127.0.0.1:" + strconv.Itoa(hostPort)
	waitHTTPS(t, "https://"+addr+"/readyz")
	admin := func(args ...string) result {
		return pier(t, append([]string{"host", args[0], "--host-addr", addr, "--data-dir", hostDir}, args[1:]...)...)
	}
	ps := func() map[string]api.HostJob {
		res := admin("ps", "--json")
		var jobs []api.HostJob
		if err := json.Unmarshal([]byte(res.stdout), &jobs); err != nil {
			t.Fatalf("ps --json: %v\n%s%s", err, res.stdout, res.stderr)
		}
		m := map[string]api.HostJob{}
		for _, j := range jobs {
			m[j.Job.ID] = j
		}
		return m
	}
	run := admin("run", "-d", "--", "sh", "-c", "i=0; while :; do echo tick $i; i=$((i+1)); sleep 0.1; done")
	ticker := strings.TrimSpace(run.stdout + run.stderr)
	if run.code != 0 || !strings.HasPrefix(ticker, "run-") {
		t.Fatalf("run -d: %+v", run)
	}
	var pid int
	waitFor(t, "the job to run", func() bool {
		j, ok := ps()[ticker]
		if ok && j.Status != nil && j.Status.State == api.JobRunning {
			pid = j.Status.PID
			return true
		}
		return false
	})

	var exiter string
	for i := 0; i < 10; i++ {
		if i == 9 {
			// The last time, a job ends while no agent watches it.
			res := admin("run", "-d", "--", "sh", "-c", "sleep 1; exit 7")
			exiter = strings.TrimSpace(res.stdout + res.stderr)
			waitFor(t, "the short job to run", func() bool {
				j, ok := ps()[exiter]
				return ok && j.Status != nil && j.Status.State == api.JobRunning
			})
		}
		host.kill()
		if err := syscall.Kill(pid, 0); err != nil {
			t.Fatalf("kill %d: the job died with its agent", i)
		}
		time.Sleep(300 * time.Millisecond)
		if i == 9 {
			time.Sleep(1500 * time.Millisecond)
		}
		host = startDaemon(t, hostArgs...)
		waitHTTPS(t, "https://"+addr+"/readyz")
		waitFor(t, "the job to be supervised again", func() bool {
			j, ok := ps()[ticker]
			return ok && j.Supervised && j.Status != nil && j.Status.State == api.JobRunning
		})
		if j := ps()[ticker]; j.Status.PID != pid || j.Job.Restarts != 0 {
			t.Fatalf("kill %d: pid %d→%d, restarts %d", i, pid, j.Status.PID, j.Job.Restarts)
		}
	}
	waitFor(t, "the exit while away to be reported", func() bool {
		j, ok := ps()[exiter]
		return ok && j.Status != nil && j.Status.State == api.JobFailed
	})
	if j := ps()[exiter]; j.Status.ExitCode == nil || *j.Status.ExitCode != 7 {
		t.Fatalf("exit while away: %+v", j.Status)
	}
	// No line was lost across the ten kills.
	logs := admin("logs", ticker)
	lines := strings.Split(strings.TrimSpace(logs.stdout), "\n")
	if len(lines) < 20 {
		t.Fatalf("only %d lines:\n%s", len(lines), logs.stdout)
	}
	for i, l := range lines {
		if l != "tick "+strconv.Itoa(i) {
			t.Fatalf("line %d is %q", i, l)
		}
	}
	if res := admin("stop", ticker); res.code != 0 {
		t.Fatalf("stop: %+v", res)
	}
}
