package cli_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pierpaas/pier/api"
)

// cliUser runs pier commands as a user of the `pier up` p would: with the
// CLI config that `pier up` wrote, and no terminal.
type cliUser struct {
	t *testing.T
	p *upProc
}

// run runs pier and returns its stdout, stderr and exit code.
func (u cliUser) run(args ...string) (string, string, int) {
	u.t.Helper()
	cmd := exec.Command(pierBin, args...)
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+u.p.configHome, "PIER_APP=", "PIER_URL=", "PIER_KEY=")
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		u.t.Fatalf("pier %v: %v", args, err)
	}
	return stdout.String(), stderr.String(), code
}

// must runs pier and fails the test unless it succeeds.
func (u cliUser) must(args ...string) string {
	u.t.Helper()
	out, errOut, code := u.run(args...)
	if code != 0 {
		u.t.Fatalf("pier %s: exit %d\nstdout: %s\nstderr: %s\npier up:\n%s", strings.Join(args, " "), code, out, errOut, tail(u.p.stderr.String(), 4000))
	}
	return out
}

// fails runs pier and fails the test unless it fails with a message
// containing want.
func (u cliUser) fails(want string, args ...string) {
	u.t.Helper()
	out, errOut, code := u.run(args...)
	if code == 0 || !strings.Contains(errOut, want) {
		u.t.Fatalf("pier %s: exit %d, stderr %q, stdout %q; want a failure saying %q", strings.Join(args, " "), code, errOut, out, want)
	}
}

func (u cliUser) jobs(app string) api.JobList {
	u.t.Helper()
	var jl api.JobList
	if err := json.Unmarshal([]byte(u.must("ps", "-a", app, "--json")), &jl); err != nil {
		u.t.Fatal(err)
	}
	return jl
}

// running counts the app's running jobs of release version v (any when
// 0) that are meant to keep running (not being stopped).
func running(jl api.JobList, v int) int {
	n := 0
	for _, j := range jl.Jobs {
		if j.State == api.JobRunning && j.Desired == api.DesiredRunning && !j.OneOff && (v == 0 || j.Version == v) {
			n++
		}
	}
	return n
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func waitUntil(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// get fetches path from the router with Host set to the app's domain.
func get(p *upProc, app, path string) (int, string, error) {
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d%s", p.httpPort, path), nil)
	req.Host = app + ".localhost"
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// writeApp writes a directory that `pier deploy` takes: a Procfile and
// files for python's static server.
func writeApp(t *testing.T, procfile string, files map[string]string) string {
	dir := t.TempDir()
	files["Procfile"] = procfile
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestAppWorkflow is issue 5's walk-through as a user does it, with the
// real binary, real containers and the router.
func TestAppWorkflow(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	p := startUp(t, dataDir, freeUpPorts(t))
	u := cliUser{t, p}

	u.must("create", "hello")
	u.fails("already exists", "create", "hello")
	for _, bad := range []string{"Hello", "a;touch /tmp/x", "$(id)", strings.Repeat("a", 64)} {
		u.fails("app name", "create", bad)
	}
	if out := u.must("apps"); strings.Count(out, "\n") != 2 {
		t.Fatalf("apps after one create and four refusals:\n%s", out)
	}
	var apps []api.App
	if err := json.Unmarshal([]byte(u.must("apps", "--json")), &apps); err != nil || len(apps) != 1 || apps[0].Name != "hello" {
		t.Fatalf("apps --json: %+v, %v", apps, err)
	}
	if out := u.must("api-keys"); !strings.HasPrefix(out, "ID") || strings.Count(out, "\n") != 2 {
		t.Fatalf("api-keys: the bootstrap key alone:\n%s", out)
	}

	dir := writeApp(t, "web: python3 -m http.server $PORT\n", map[string]string{"index.html": "hello from pier\n"})
	out := u.must("deploy", "-a", "hello", dir)
	if !strings.Contains(out, "Release v1") || !strings.Contains(out, "http://hello.localhost:") {
		t.Fatalf("deploy said:\n%s", out)
	}
	waitUntil(t, "the app to answer through the router", 20*time.Second, func() bool {
		code, body, _ := get(p, "hello", "/index.html")
		return code == 200 && body == "hello from pier\n"
	})
	// The operator's view: pier up's one host runs the web job; its one
	// server answers the API.
	var hosts []api.HostInfo
	if err := json.Unmarshal([]byte(u.must("hosts", "--json")), &hosts); err != nil || len(hosts) != 1 || hosts[0].Jobs != 1 {
		t.Fatalf("hosts --json: %+v, %v", hosts, err)
	}
	if out := u.must("hosts"); !strings.HasPrefix(out, "ID") || !strings.Contains(out, hosts[0].ID) {
		t.Fatalf("hosts:\n%s", out)
	}
	if out := u.must("servers"); !strings.HasPrefix(out, "NAME") || strings.Count(out, "https://") != 1 {
		t.Fatalf("servers:\n%s", out)
	}
	// A drain with nowhere to go keeps the job where it is; undrain ends it.
	u.must("hosts", "drain", hosts[0].ID, "--no-wait")
	if out := u.must("hosts"); !strings.Contains(out, "draining") {
		t.Fatalf("hosts while draining:\n%s", out)
	}
	u.fails("no live host", "hosts", "drain", "nosuchhost")
	u.must("hosts", "undrain", hosts[0].ID)
	u.fails("not being drained", "hosts", "undrain", hosts[0].ID)
	if code, body, _ := get(p, "hello", "/index.html"); code != 200 || body != "hello from pier\n" {
		t.Fatalf("the app after a drain with nowhere to go: %d %q", code, body)
	}

	u.must("scale", "-a", "hello", "web=3")
	waitUntil(t, "three running web jobs", 30*time.Second, func() bool { return running(u.jobs("hello"), 1) == 3 })
	if out := u.must("scale", "-a", "hello"); strings.TrimSpace(out) != "web=3" {
		t.Fatalf("scale with no arguments: %q", out)
	}
	u.fails(`no process type "worker"`, "scale", "-a", "hello", "worker=1")
	u.fails("want TYPE=COUNT", "scale", "-a", "hello", "web=lots")

	out = u.must("env", "set", "-a", "hello", "GREETING=hi")
	if !strings.Contains(out, "Release v2") {
		t.Fatalf("env set said:\n%s", out)
	}
	// The deployment waited for the one-by-one replacement.
	jl := u.jobs("hello")
	if running(jl, 2) != 3 || running(jl, 1) != 0 {
		t.Fatalf("after env set: %+v", jl.Jobs)
	}
	if out := u.must("config", "-a", "hello"); !strings.Contains(out, "GREETING: hi") {
		t.Fatalf("config: %q", out)
	}
	if out := u.must("run", "-a", "hello", "--", "sh", "-c", "echo $GREETING"); strings.TrimSpace(out) != "hi" {
		t.Fatalf("run sees GREETING=%q", out)
	}

	out = u.must("rollback", "-a", "hello", "v1")
	if !strings.Contains(out, "Release v3") {
		t.Fatalf("rollback said:\n%s", out)
	}
	if out := u.must("config:set", "-a", "hello", "A=1", "--no-wait"); !strings.Contains(out, "Release v4") {
		t.Fatalf("config:set said:\n%s", out)
	}
	waitUntil(t, "v4 live", 60*time.Second, func() bool {
		var rels []api.Release
		json.Unmarshal([]byte(u.must("releases", "-a", "hello", "--json")), &rels)
		out := u.must("releases", "-a", "hello")
		return len(rels) == 4 && strings.Contains(out, "v4") && strings.Contains(strings.SplitN(out, "\n", 3)[1], "current")
	})
	env := u.must("env", "-a", "hello", "--json")
	if strings.Contains(env, "GREETING") || !strings.Contains(env, `"A": "1"`) {
		t.Fatalf("v4 = v3 (v1's config) + A=1; got %s", env)
	}

	if out, _, code := u.run("run", "-a", "hello", "--", "sh", "-c", "exit 3"); code != 3 {
		t.Fatalf("run exit 3: code %d, %q", code, out)
	}
	if out := u.must("run", "-a", "hello", "--", "echo", "hi"); out != "hi\n" {
		t.Fatalf("run echo hi: %q", out)
	}
	code, body, err := get(p, "hello", "/index.html")
	if err != nil || code != 200 || body != "hello from pier\n" {
		t.Fatalf("serving after all that: %d %q %v", code, body, err)
	}

	// pier kill: the job stops and the scheduler replaces it.
	victim := ""
	for _, j := range u.jobs("hello").Jobs {
		if j.State == api.JobRunning && j.Desired == api.DesiredRunning {
			victim = j.ID
		}
	}
	u.must("kill", "-a", "hello", victim)
	waitUntil(t, "a replacement for the killed job", 30*time.Second, func() bool {
		jl := u.jobs("hello")
		for _, j := range jl.Jobs {
			if j.ID == victim && j.Desired == api.DesiredRunning && !j.State.Terminal() {
				return false
			}
		}
		return running(jl, 4) == 3
	})
	u.fails("no job", "kill", "-a", "hello", "hello-web-nosuchjob")

	// Several clusters, and the environment over the config.
	if out := u.must("cluster", "list"); !strings.Contains(out, "*  local") {
		t.Fatalf("cluster list:\n%s", out)
	}
	var cfg struct {
		Clusters []struct {
			URL   string `json:"url"`
			Key   string `json:"key"`
			CAPEM string `json:"ca_pem"`
		}
	}
	b, _ := os.ReadFile(filepath.Join(p.configHome, "pier", "config.json"))
	json.Unmarshal(b, &cfg)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, []byte(cfg.Clusters[0].CAPEM), 0o600)
	u.must("cluster", "add", "again", cfg.Clusters[0].URL, cfg.Clusters[0].Key, "--ca", ca)
	if out := u.must("--cluster", "again", "apps"); !strings.Contains(out, "hello") {
		t.Fatalf("apps on the second cluster entry: %q", out)
	}
	u.must("cluster", "default", "again")
	u.fails("unknown cluster", "--cluster", "nope", "apps")
	bare := exec.Command(pierBin, "apps")
	bare.Env = append(os.Environ(), "XDG_CONFIG_HOME="+t.TempDir(), "PIER_URL="+cfg.Clusters[0].URL,
		"PIER_KEY="+cfg.Clusters[0].Key, "PIER_CA="+ca)
	if out, err := bare.CombinedOutput(); err != nil || !strings.Contains(string(out), "hello") {
		t.Fatalf("PIER_URL, PIER_KEY, PIER_CA with no config: %v %s", err, out)
	}
	bare = exec.Command(pierBin, "apps")
	bare.Env = append(os.Environ(), "XDG_CONFIG_HOME="+p.configHome, "PIER_KEY=pier_0000aaaa_wrong")
	if out, err := bare.CombinedOutput(); err == nil || !strings.Contains(string(out), "not valid") {
		t.Fatalf("a wrong PIER_KEY: %v %s", err, out)
	}

	// destroy stops the jobs and the route goes.
	u.fails("--confirm hello", "destroy", "hello")
	u.must("destroy", "hello", "--confirm", "hello")
	waitUntil(t, "the route to go", 20*time.Second, func() bool {
		code, _, err := get(p, "hello", "/")
		return err == nil && code == 404
	})
	u.fails("no app", "ps", "-a", "hello")
}
