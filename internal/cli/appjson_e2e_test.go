package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pierpaas/pier/api"
)

// TestAppJSONExample pushes examples/appjson with git: its formation
// starts two web jobs, its HTTP health check keeps them out of the router
// while they warm up (their / answers "still warming up" then, which no
// request may see), releases:info shows the check and the schedule, the
// cron job's line reaches pier logs within a minute and a bit, and a bad
// schedule fails the next push naming its line in app.json while the
// running release keeps serving.
func TestAppJSONExample(t *testing.T) {
	p := startUp(t, filepath.Join(t.TempDir(), "data"), freeUpPorts(t))
	u := newPusher(t, p)
	cli := cliUser{t, p}
	dir := u.checkout("appjson")
	u.must(dir, pierBin, "create", "appjson")

	// A client that asks all through the push and the warm-up after it.
	var warming, served atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			code, body, _ := get(p, "appjson", "/")
			switch {
			case strings.Contains(body, "warming up"):
				warming.Add(1)
			case code == 200:
				served.Add(1)
			}
		}
	}()
	out, took := u.push(dir)
	t.Logf("first push took %s", took.Round(time.Millisecond))
	deployed := time.Now()
	for _, want := range []string{
		"app.json declares cron-1 (*/1 * * * *), web health check GET /health, web=2",
		"postdeploy: runs once, after the first deploy", "deployed",
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("push output lacks %q:\n%s", want, out)
		}
	}
	time.Sleep(4 * time.Second) // longer than the app's warm-up
	close(stop)
	wg.Wait()
	if warming.Load() != 0 || served.Load() == 0 {
		t.Fatalf("%d requests reached a job still warming up, %d were served", warming.Load(), served.Load())
	}

	web := 0
	for _, j := range cli.jobs("appjson").Jobs {
		if j.ProcessType == "web" && j.State == api.JobRunning {
			web++
		}
	}
	if web != 2 {
		t.Fatalf("%d web jobs running, want the formation's 2:\n%s", web, cli.must("ps", "-a", "appjson"))
	}
	info := cli.must("releases:info", "-a", "appjson")
	for _, want := range []string{"health check: GET /health (every 2s, timeout 2s, 3 attempts)", "schedule: */1 * * * * (UTC)"} {
		if !strings.Contains(info, want) {
			t.Fatalf("releases:info lacks %q:\n%s", want, info)
		}
	}

	var logs string
	waitUntil(t, "the cron job's line in pier logs", 80*time.Second, func() bool {
		logs = cli.must("logs", "-a", "appjson", "-n", "500")
		return strings.Contains(logs, "tick from cron at")
	})
	t.Logf("the cron job's line was in pier logs %s after the deploy", time.Since(deployed).Round(time.Second))
	if !strings.Contains(logs, "cron-1") {
		t.Fatalf("the cron line is not the cron-1 job's:\n%s", logs)
	}

	// A schedule with four fields fails the push at its line.
	src, err := os.ReadFile(filepath.Join(dir, "app.json"))
	if err != nil {
		t.Fatal(err)
	}
	u.commit(dir, "app.json", strings.Replace(string(src), `"*/1 * * * *"`, `"*/1 * * *"`, 1))
	out, err = u.run(dir, u.key, "git", "push", "pier", "main")
	if err == nil || !strings.Contains(out, "app.json line 11, column 68: cron[0].schedule: bad schedule") {
		t.Fatalf("push of a bad app.json: %v\n%s", err, out)
	}
	u.serves("appjson", "Hello from app.json")
}
