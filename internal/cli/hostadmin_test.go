package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/host/agent"
	"github.com/pierpaas/pier/host/shim"
	"github.com/pierpaas/pier/internal/pki"
	"github.com/pierpaas/pier/internal/testutil"
	"github.com/pierpaas/pier/store/storetest"
)

// startRuncAgent runs a host agent in the test with real runc and real
// shims (re-executions of the built binary), as a joined host would, and
// returns its API address and data directory. Whatever happens, its
// containers and shims are gone when the test ends.
func startRuncAgent(t *testing.T) (addr, dataDir string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("these tests need root (CI runs as root): runc cannot run containers otherwise")
	}
	c := storetest.NewCluster(t, 1)
	dataDir = filepath.Join(t.TempDir(), "host")
	err := c.CA.Issue(filepath.Join(dataDir, "pki"), pki.Request{CommonName: "h1", Role: pki.RoleHost, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(map[string][]string{"etcd_endpoints": c.Endpoints()})
	if err := pki.WriteFile(filepath.Join(dataDir, "host.json"), b); err != nil {
		t.Fatal(err)
	}
	sockDir, err := os.MkdirTemp("/tmp", "shims")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	t.Cleanup(func() {
		if rt, err := agent.NewRuntime("runc", filepath.Join(dataDir, "runtime"), log); err == nil {
			ids, _ := rt.List()
			for _, id := range ids {
				rt.Delete(id)
			}
		}
		shim.KillAll(filepath.Join(dataDir, "jobs"))
		os.RemoveAll(sockDir)
	})
	cfg := agent.Config{
		ID: "h1", DataDir: dataDir, ShimSocketDir: sockDir, LeaseTTL: 2 * time.Second,
		PortLow: 42000, PortHigh: 42999, APIPort: testutil.FreePort(t), Runtime: "runc",
		Launcher: agent.ExecLauncher{Binary: pierBin}, PierBinary: pierBin, Version: "test", Log: log,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := agent.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a.APIAddr(), dataDir
}

type result struct {
	stdout, stderr string
	code           int
}

func pier(t *testing.T, args ...string) result {
	t.Helper()
	cmd := exec.Command(pierBin, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	res := result{stdout: out.String(), stderr: errOut.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		res.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("pier %v: %v", args, err)
	}
	return res
}

func TestHostAdminCommands(t *testing.T) {
	addr, dataDir := startRuncAgent(t)
	at := []string{"--host-addr", addr, "--data-dir", dataDir}
	host := func(sub string, args ...string) result {
		t.Helper()
		return pier(t, append(append([]string{"host", sub}, at...), args...)...)
	}

	// run: the job's id on stderr, its output as it comes, its exit code.
	res := host("run", "--memory", "64", "-e", "WHO=world", "--", "sh", "-c", "echo hi $WHO; sleep 0.2; echo oops >&2; exit 3")
	if res.code != 3 || res.stdout != "hi world\n" || !strings.Contains(res.stderr, "oops\n") {
		t.Fatalf("run: %+v", res)
	}
	id := regexp.MustCompile(`run-[0-9a-f]{10}`).FindString(res.stderr)
	if id == "" {
		t.Fatalf("no job id on stderr: %q", res.stderr)
	}
	if res := host("run", "--", "true"); res.code != 0 || res.stdout != "" {
		t.Fatalf("run true: %+v", res)
	}

	// ps lists it, as JSON and as a table.
	res = host("ps", "--json")
	var jobs []api.HostJob
	if err := json.Unmarshal([]byte(res.stdout), &jobs); err != nil || res.code != 0 {
		t.Fatalf("ps --json: %v %+v", err, res)
	}
	var found *api.HostJob
	for i := range jobs {
		if jobs[i].Job.ID == id {
			found = &jobs[i]
		}
	}
	if found == nil || found.Status == nil || found.Status.State != api.JobFailed || found.Status.ExitCode == nil ||
		*found.Status.ExitCode != 3 || found.Job.Resources.MemoryMB != 64 || found.Status.PID == 0 {
		t.Fatalf("ps --json: %s", res.stdout)
	}
	if res := host("ps"); res.code != 0 || !strings.Contains(res.stdout, id) || !strings.Contains(res.stdout, "exit status 3") {
		t.Fatalf("ps: %+v", res)
	}

	// logs, whole and tail.
	if res := host("logs", id); res.code != 0 || res.stdout != "hi world\n" || res.stderr != "oops\n" {
		t.Fatalf("logs: %+v", res)
	}
	if res := host("logs", "-n", "1", id); res.code != 0 || res.stdout != "" || res.stderr != "oops\n" {
		t.Fatalf("logs -n 1: %+v", res)
	}

	// status.
	res = host("status", "--json")
	var st api.HostStatus
	if err := json.Unmarshal([]byte(res.stdout), &st); err != nil || st.ID != "h1" || st.Runtime != "runc" || st.Jobs < 2 {
		t.Fatalf("status: %v %+v", err, res)
	}
	if res := host("status"); res.code != 0 || !strings.Contains(res.stdout, "h1") {
		t.Fatalf("status: %+v", res)
	}

	// A detached job is followed with logs -f, signalled, and stopped.
	res = host("run", "-d", "--", "sh", "-c", "trap 'echo got usr1' USR1; trap 'exit 0' TERM; echo ready; while true; do sleep 0.1; done")
	long := strings.TrimSpace(res.stdout)
	if res.code != 0 || !regexp.MustCompile(`^run-[0-9a-f]{10}$`).MatchString(long) {
		t.Fatalf("run -d: %+v", res)
	}
	follow := exec.Command(pierBin, append(append([]string{"host", "logs", "-f"}, at...), long)...)
	var followed bytes.Buffer
	follow.Stdout = &followed
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	followDone := make(chan error, 1)
	go func() { followDone <- follow.Wait() }()
	t.Cleanup(func() { follow.Process.Kill() })
	waitFor(t, "the job to be ready", func() bool { return strings.Contains(host("logs", long).stdout, "ready") })
	if res := host("signal", long, "USR1"); res.code != 0 {
		t.Fatalf("signal: %+v", res)
	}
	waitFor(t, "the signal to be handled", func() bool { return strings.Contains(host("logs", long).stdout, "got usr1") })
	if res := host("stop", long); res.code != 0 || res.stdout != long+" shutdown\n" {
		t.Fatalf("stop: %+v", res)
	}
	select {
	case err := <-followDone:
		if err != nil || followed.String() != "ready\ngot usr1\n" {
			t.Fatalf("logs -f: %v %q", err, followed.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("logs -f did not end with the job")
	}

	// Ctrl-C at `pier host run` stops the job, follows it to its end, and
	// exits 130.
	run := exec.Command(pierBin, append(append([]string{"host", "run"}, at...),
		"--", "sh", "-c", "trap 'echo bye; exit 0' TERM; echo started; while true; do sleep 0.1; done")...)
	var runOut, runErr testutil.SyncBuffer
	run.Stdout, run.Stderr = &runOut, &runErr
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { run.Process.Kill() })
	waitFor(t, "the job to start", func() bool { return strings.Contains(runOut.String(), "started") })
	run.Process.Signal(os.Interrupt)
	runDone := make(chan error, 1)
	go func() { runDone <- run.Wait() }()
	select {
	case err := <-runDone:
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 130 || runOut.String() != "started\nbye\n" || !strings.Contains(runErr.String(), "stopping") {
			t.Fatalf("interrupted run: %v, stdout %q, stderr %q", err, runOut.String(), runErr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("interrupted run did not end")
	}

	// Errors: a clear message and a non-zero exit.
	for _, c := range []struct {
		args []string
		want string
	}{
		{append([]string{"host", "stop"}, append(at, "nosuch")...), "no job"},
		{append([]string{"host", "stop"}, append(at, long)...), "not running"},
		{append([]string{"host", "signal"}, append(at, long, "NOSUCHSIG")...), "unknown signal"},
		{[]string{"host", "ps", "--host-addr", addr, "--data-dir", t.TempDir()}, "no cluster credentials"},
		{[]string{"host", "ps", "--host-addr", "127.0.0.1:" + strconv.Itoa(testutil.FreePort(t)), "--data-dir", dataDir}, "no host agent at"},
		{append([]string{"host", "run"}, append(at, "-e", "NOEQUALS", "--", "true")...), "KEY=VALUE"},
		{[]string{"host", "bogus"}, "unknown command"},
	} {
		res := pier(t, c.args...)
		if res.code == 0 || !strings.Contains(res.stderr, "pier:") || !strings.Contains(res.stderr, c.want) {
			t.Errorf("pier %v: %+v, want an error with %q", c.args, res, c.want)
		}
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}
