package cli_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pierpaas/pier/api"
)

// TestHerokuVerbs types issue 23's verbs as a Heroku user would, on one
// pier up: honest messages before the first deploy, restart under load
// without a failed request, maintenance mode, config:get, releases:info,
// open, logs --tail, events --since and apps:rename.
func TestHerokuVerbs(t *testing.T) {
	p := startUp(t, filepath.Join(t.TempDir(), "data"), freeUpPorts(t))
	u := cliUser{t, p}
	dir := writeApp(t, "web: python3 -m http.server $PORT\n", map[string]string{"index.html": "alive\n"})

	// Before the first deploy.
	u.must("apps:create", "hello")
	if code, body, err := get(p, "hello", "/"); err != nil || code != 503 || !strings.Contains(body, "Not deployed yet") {
		t.Fatalf("an app not deployed yet: %d %q %v; want 503", code, body, err)
	}
	u.fails("no release yet", "run", "-a", "hello", "--", "true")
	u.fails("no release yet", "restart", "-a", "hello")
	if _, errOut, code := u.run("deploy", "--no-build", "-a", "nosuchapp", dir); code == 0 || !strings.Contains(errOut, "no app") || strings.Contains(errOut, "packed") {
		t.Fatalf("deploy to no app: exit %d, stderr %q; want a failure before packing", code, errOut)
	}
	u.fails("want an event id", "events", "--since", "yesterday-ish")

	out := u.must("deploy", "--no-build", "-a", "hello", dir)
	if !strings.Contains(out, "is live at http://hello.localhost") {
		t.Fatalf("deploy said:\n%s", out)
	}
	u.must("ps:scale", "-a", "hello", "web=2")
	healthy := func() []string {
		var ids []string
		for _, j := range u.jobs("hello").Jobs {
			if j.State == api.JobRunning && j.Desired == api.DesiredRunning && j.Healthy != nil && *j.Healthy {
				ids = append(ids, j.ID)
			}
		}
		return ids
	}
	waitUntil(t, "two healthy web jobs", 30*time.Second, func() bool { return len(healthy()) == 2 })
	before := healthy()

	// pier restart under load: not one request fails.
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				code, body, err := get(p, "hello", "/")
				if err != nil || code != 200 || body != "alive\n" {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("%d %q %v", code, body, err))
				} else {
					ok.Add(1)
				}
			}
		})
	}
	began := time.Now()
	out = u.must("restart", "-a", "hello")
	close(stop)
	wg.Wait()
	t.Logf("restart of 2 web jobs took %s; %d requests served, %d failed", time.Since(began).Round(time.Millisecond), ok.Load(), failed.Load())
	if failed.Load() != 0 || ok.Load() == 0 {
		t.Fatalf("requests during the restart: %d ok, %d failed (first: %v)", ok.Load(), failed.Load(), firstErr.Load())
	}
	if !strings.Contains(out, "Restarted hello") {
		t.Fatalf("restart said %q", out)
	}
	after := u.jobs("hello").Jobs
	for _, j := range after {
		for _, id := range before {
			if j.ID == id && j.Desired == api.DesiredRunning {
				t.Fatalf("job %s still runs after the restart", id)
			}
		}
	}
	u.fails("no process type", "restart", "-a", "hello", "worker")

	// Maintenance mode.
	if out := u.must("maintenance", "-a", "hello"); strings.TrimSpace(out) != "off" {
		t.Fatalf("maintenance: %q", out)
	}
	u.must("maintenance:on", "-a", "hello")
	waitUntil(t, "the maintenance page", 10*time.Second, func() bool {
		code, body, _ := get(p, "hello", "/")
		return code == 503 && strings.Contains(body, "maintenance")
	})
	if out := u.must("maintenance", "-a", "hello"); strings.TrimSpace(out) != "on" {
		t.Fatalf("maintenance: %q", out)
	}
	u.must("maintenance:off", "-a", "hello")
	waitUntil(t, "the app again", 10*time.Second, func() bool { code, _, _ := get(p, "hello", "/"); return code == 200 })

	// Config, releases, open.
	u.must("config:set", "-a", "hello", "GREETING=hi there")
	if out := u.must("config:get", "-a", "hello", "GREETING"); out != "hi there\n" {
		t.Fatalf("config:get: %q", out)
	}
	u.fails("no config var NOPE", "config:get", "-a", "hello", "NOPE")
	if out := u.must("releases:info", "-a", "hello", "v2"); !strings.Contains(out, "hello v2 (current)") || !strings.Contains(out, "GREETING: hi there") ||
		!strings.Contains(out, "web: ") {
		t.Fatalf("releases:info v2:\n%s", out)
	}
	u.fails("no release", "releases:info", "-a", "hello", "v9")
	if out := u.must("apps:info", "-a", "hello"); !strings.Contains(out, "=== hello") {
		t.Fatalf("apps:info:\n%s", out)
	}
	if out := u.must("open", "-a", "hello", "index.html"); !strings.HasPrefix(out, "http://hello.localhost:") || !strings.HasSuffix(out, "/index.html\n") {
		t.Fatalf("open: %q", out)
	}

	// Logs: -j of no job is an error; -t follows new lines.
	u.fails("no job", "logs", "-a", "hello", "-j", "hello-web-nosuchjob")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	follow := exec.CommandContext(ctx, pierBin, "logs", "-a", "hello", "-t", "-n", "0", "-s", "app")
	follow.Env = append(os.Environ(), "XDG_CONFIG_HOME="+p.configHome, "PIER_APP=")
	var logOut syncBuffer
	follow.Stdout = &logOut
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "pier logs --tail to show a request made after it started", 20*time.Second, func() bool {
		get(p, "hello", "/tail-marker")
		return strings.Contains(logOut.String(), "/tail-marker")
	})
	follow.Process.Kill()
	follow.Wait()

	// Events: ids printed, and --since takes a time.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel2()
	ev := exec.CommandContext(ctx2, pierBin, "events", "-a", "hello", "--since", "10m")
	ev.Env = follow.Env
	evOut, _ := ev.Output()
	if !strings.Contains(string(evOut), "release") || !strings.Contains(string(evOut), "-0 ") {
		t.Fatalf("events --since 10m:\n%s", evOut)
	}

	// Rename: the app answers under its new name.
	u.must("apps:rename", "hello", "hello2")
	u.fails("no app", "info", "-a", "hello")
	waitUntil(t, "hello2 to answer", 30*time.Second, func() bool {
		code, body, _ := get(p, "hello2", "/")
		return code == 200 && body == "alive\n"
	})
	if out := u.must("config:get", "-a", "hello2", "GREETING"); out != "hi there\n" {
		t.Fatalf("config after the rename: %q", out)
	}
	u.must("apps:destroy", "hello2", "--confirm", "hello2")
}

// syncBuffer is a strings.Builder a process writes while a test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// releaseApp gives app a first release that runs nothing (a Procfile of
// one worker type, scaled to 0): pier run needs a release to take its
// code and config from.
func releaseApp(t *testing.T, u cliUser, app string) {
	t.Helper()
	u.must("deploy", "--no-build", "-a", app, writeApp(t, "worker: sleep infinity\n", map[string]string{}))
}
