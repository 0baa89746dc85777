package cli_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFreshAppsDeployEveryTime deploys 30 new Procfile-only apps in a row
// with `pier deploy` and 10 with `git push`: every one succeeds. Their
// builds take a moment, and one in two to six used to be reported as
// failed ("the build could not start: job ... has ended (complete)")
// because the controller took a build that had already ended for one
// that never started. A build that fails fast shows its own error.
func TestFreshAppsDeployEveryTime(t *testing.T) {
	p := startUp(t, filepath.Join(t.TempDir(), "data"), freeUpPorts(t))
	u := cliUser{t, p}
	app := writeApp(t, "web: python3 -m http.server $PORT\n", map[string]string{"index.html": "fresh\n"})
	var slowest time.Duration
	for i := range 30 {
		name := fmt.Sprintf("fresh%d", i)
		u.must("create", name)
		start := time.Now()
		out, errOut, code := u.run("deploy", "-a", name, app)
		slowest = max(slowest, time.Since(start))
		if code != 0 || !strings.Contains(out+errOut, "deployed") {
			t.Fatalf("deploy %d of a fresh app: exit %d\n%s%s", i, code, out, errOut)
		}
	}
	t.Logf("30 fresh apps deployed with pier deploy, the slowest in %s", slowest.Round(time.Millisecond))
	for _, name := range []string{"fresh0", "fresh29"} {
		if code, body, err := get(p, name, "/index.html"); code != 200 || body != "fresh\n" {
			t.Fatalf("%s through the router: %d %q %v", name, code, body, err)
		}
	}

	g := newPusher(t, p)
	slowest = 0
	for i := range 10 {
		name := fmt.Sprintf("pushed%d", i)
		dir := g.checkout("hello")
		g.must(dir, pierBin, "create", name)
		out, took := g.push(dir)
		slowest = max(slowest, took)
		if !strings.Contains(out, "deployed") {
			t.Fatalf("git push %d of a fresh app:\n%s", i, out)
		}
	}
	t.Logf("10 fresh apps deployed with git push, the slowest in %s", slowest.Round(time.Millisecond))

	// Nothing a buildpack recognises: the build fails at once, and says
	// why rather than that its job "has ended".
	u.must("create", "nothing")
	empty := t.TempDir()
	_, errOut, code := u.run("deploy", "-a", "nothing", empty)
	if code == 0 || strings.Contains(errOut, "has ended") || !strings.Contains(errOut, "build failed") {
		t.Fatalf("a build that fails fast: exit %d\n%s", code, errOut)
	}
	if out := u.must("builds:output", "-a", "nothing"); !strings.Contains(strings.ToLower(out), "buildpack") {
		t.Fatalf("the failed build's output does not say what went wrong:\n%s", out)
	}
}
