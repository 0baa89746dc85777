package cli_test

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDeployFailuresPendingAndRestart shows, with the real binary: a
// release whose web process never passes its health check is rolled back
// by itself, with the reason; a failing release phase stops a deploy; in
// both cases the old release keeps serving. A process type that asks for
// more memory than any host has stays pending and `pier ps` says why. And
// `pier up` killed with SIGKILL comes back with everything.
func TestDeployFailuresPendingAndRestart(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	ports := freeUpPorts(t)
	p := startUp(t, dataDir, ports)
	u := cliUser{t, p}
	u.must("create", "svc", "--deploy-timeout", "6s")

	good := "web: python3 -m http.server $PORT\nbig: sleep 100000\n"
	u.must("deploy", "-a", "svc", writeApp(t, good, map[string]string{"index.html": "v1\n"}))
	serving := func(want string) {
		t.Helper()
		waitUntil(t, "the router to serve "+want, 15*time.Second, func() bool {
			code, body, _ := get(p, "svc", "/index.html")
			return code == 200 && body == want
		})
	}
	serving("v1\n")

	// v2 never listens on $PORT: its health check never passes.
	u.fails("health check not passed", "deploy", "-a", "svc", writeApp(t, "web: sleep 100000\n", map[string]string{"index.html": "v2\n"}))
	serving("v1\n")
	if jl := u.jobs("svc"); running(jl, 1) != 1 || running(jl, 2) != 0 {
		t.Fatalf("after the failed deploy of v2: %+v", jl.Jobs)
	}

	// v3's release phase fails: nothing of v3 starts, and the deploy shows
	// the job's last lines, where its reason is.
	u.fails("release phase", "deploy", "-a", "svc", writeApp(t, "release: sh -c 'echo migration failed: no table users; exit 4'\n"+good, map[string]string{"index.html": "v3\n"}))
	if out := u.must("builds:output", "-a", "svc"); !strings.Contains(out, "The last lines of job svc-v3-release:\n       migration failed: no table users\n") {
		t.Fatalf("the failed deploy's output:\n%s", out)
	}
	serving("v1\n")
	out := u.must("releases", "-a", "svc")
	lines := strings.Split(out, "\n")
	if len(lines) < 4 || !strings.Contains(lines[1], "v3") || !strings.Contains(lines[1], "failed") ||
		!strings.Contains(lines[2], "v2") || !strings.Contains(lines[2], "failed") || !strings.Contains(lines[3], "current") {
		t.Fatalf("releases:\n%s", out)
	}

	// A release deployed as it is (no build) whose web process crashes:
	// the deploy fails with the job's last lines, as a build's does.
	crash := writeApp(t, "web: sh -c 'echo crashing on purpose: no DATABASE_URL; exit 3'\n", map[string]string{"index.html": "v4\n"})
	_, errOut, code := u.run("deploy", "--no-build", "-a", "svc", crash)
	if code == 0 || !strings.Contains(errOut, "failed") || !strings.Contains(errOut, "The last lines of job svc-web-") ||
		!strings.Contains(errOut, "       crashing on purpose: no DATABASE_URL\n") {
		t.Fatalf("deploy --no-build of a crashing release: exit %d, stderr:\n%s", code, errOut)
	}
	serving("v1\n")

	// More memory than the host has: the jobs wait, and ps says why.
	u.must("resize", "-a", "svc", "big=4000G")
	u.must("scale", "-a", "svc", "big=2")
	waitUntil(t, "ps to explain the pending big jobs", 15*time.Second, func() bool {
		out := u.must("ps", "-a", "svc")
		return strings.Contains(out, "2 big jobs pending") && strings.Contains(out, "memory")
	})

	// A power cut of the whole single-node cluster.
	before := u.jobs("svc")
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
	p = startUp(t, dataDir, ports)
	u = cliUser{t, p}
	serving("v1\n")
	waitUntil(t, "the same web job to be running", 20*time.Second, func() bool {
		after := u.jobs("svc")
		for _, j := range after.Jobs {
			for _, b := range before.Jobs {
				if j.ID == b.ID && j.ProcessType == "web" && j.State == "running" {
					return true
				}
			}
		}
		return false
	})
	if out := u.must("scale", "-a", "svc"); strings.TrimSpace(out) != "big=2 web=1" {
		t.Fatalf("formation after restart: %q", out)
	}
	if out := u.must("releases", "-a", "svc"); !strings.Contains(out, "v4") || !strings.Contains(out, "current") {
		t.Fatalf("releases after restart:\n%s", out)
	}
}
