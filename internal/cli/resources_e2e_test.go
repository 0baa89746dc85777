package cli_test

import (
	"encoding/json"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pierpaas/pier/api"
)

// TestPostgresResource is issue 15's PostgreSQL walk-through as a user
// does it: bad requests refused with nothing made, a database added to a
// deployed app (examples/postgres, which redeploys with DATABASE_URL),
// rows stored and read back through the router, the postgres process
// killed with SIGKILL and no committed row lost, psql through the
// cluster, pier up itself killed with SIGKILL and no row lost either,
// and the resource removed with its data.
func TestPostgresResource(t *testing.T) {
	appDir := notesApp(t)

	dataDir, ports := filepath.Join(t.TempDir(), "data"), freeUpPorts(t)
	p := startUp(t, dataDir, ports)
	u := cliUser{t, p}
	u.must("create", "notes")
	u.must("deploy", "--no-build", "-a", "notes", appDir)

	// Bad input: clear errors, nothing made.
	u.fails("unknown resource type", "resources:add", "mysql", "-a", "notes")
	u.fails("invalid", "resources:add", "postgres", "--name", "Bad_Name")
	u.fails("nope", "resources:add", "postgres", "-a", "nope")
	u.fails("size", "resources:add", "postgres", "--size", "lots")
	if out := u.must("resources", "--json"); strings.TrimSpace(out) != "[]" {
		t.Fatalf("bad requests left resources: %s", out)
	}

	begin := time.Now()
	out := u.must("resources:add", "postgres", "-a", "notes", "--name", "db", "--size", "256M")
	t.Logf("resources:add took %s: %s", time.Since(begin).Round(time.Millisecond), out)
	if !strings.Contains(out, "Attached to notes as DATABASE_URL") {
		t.Fatalf("resources:add said %q", out)
	}
	u.fails("nope", "resources:attach", "db", "-a", "nope")
	u.fails("already attached", "resources:attach", "db", "-a", "notes")
	u.fails("--confirm db", "resources:remove", "db")

	// The app, redeployed with DATABASE_URL, stores and reads rows.
	waitUntil(t, "the app to store a row", 60*time.Second, func() bool {
		code, _, err := get(p, "notes", "/add?note=first")
		return err == nil && code == 200
	})
	if code, b, err := get(p, "notes", "/"); err != nil || code != 200 || b != "first\n" {
		t.Fatalf("GET /: %d %q %v", code, b, err)
	}

	// kill -9 of the postgres server: the member job ends, its
	// replacement recovers from the WAL on the same volume.
	var info api.ResourceInfo
	if err := json.Unmarshal([]byte(u.must("resources:info", "db", "--json")), &info); err != nil {
		t.Fatal(err)
	}
	if info.State != api.ResourceAvailable || info.Member == "" || info.Volume == "" || info.Stats["version"] == "" {
		t.Fatalf("resources:info: %+v", info)
	}
	pid := postmasterPID(t, info.Member)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the app to store a row after the kill", 60*time.Second, func() bool {
		code, _, err := get(p, "notes", "/add?note=second")
		return err == nil && code == 200
	})
	waitUntil(t, "a new member", 60*time.Second, func() bool {
		var now api.ResourceInfo
		json.Unmarshal([]byte(u.must("resources:info", "db", "--json")), &now)
		return now.Member != "" && now.Member != info.Member
	})
	// Connections the killed server held fail until the pool drops
	// them; every answer that is not an error must have both rows.
	waitUntil(t, "both rows read back", 30*time.Second, func() bool {
		code, b, err := get(p, "notes", "/")
		if err == nil && code == 200 && b != "first\nsecond\n" {
			t.Fatalf("GET / after the kill: %q", b)
		}
		return err == nil && code == 200
	})

	// psql through the cluster, as the app's role on its database.
	if out := u.must("pg:psql", "db", "-a", "notes", "-c", "SELECT count(*) AS n FROM notes"); !strings.Contains(out, " 2\n") {
		t.Fatalf("pg:psql: %q", out)
	}
	if out := u.must("resources"); !strings.Contains(out, "db") || !strings.Contains(out, "available") || !strings.Contains(out, "notes") {
		t.Fatalf("resources: %q", out)
	}

	// kill -9 of pier up itself (server, host agent and router in one
	// process): the database job runs on under its shim, the restarted
	// agent adopts it, and no committed row is lost.
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
	p = startUp(t, dataDir, ports)
	u = cliUser{t, p}
	waitUntil(t, "both rows after pier up was killed and restarted", 60*time.Second, func() bool {
		code, b, err := get(p, "notes", "/")
		if err == nil && code == 200 && b != "first\nsecond\n" {
			t.Fatalf("GET / after the restart: %q", b)
		}
		return err == nil && code == 200
	})
	waitUntil(t, "the app to store a row after the restart", 60*time.Second, func() bool {
		code, _, err := get(p, "notes", "/add?note=third")
		return err == nil && code == 200
	})

	// Removal takes the app's DATABASE_URL, the server and its volume.
	u.must("resources:remove", "db", "--confirm", "db")
	if out := u.must("resources", "--json"); strings.TrimSpace(out) != "[]" {
		t.Fatalf("after removal: %s", out)
	}
	if out := u.must("volumes", "--json"); strings.Contains(out, info.Volume) {
		t.Fatalf("volume %s left: %s", info.Volume, out)
	}
	if out := u.must("env", "-a", "notes"); strings.Contains(out, "DATABASE_URL") {
		t.Fatalf("DATABASE_URL left: %s", out)
	}
	u.fails("no resource", "resources:remove", "db", "--confirm", "db")
}

// postmasterPID finds the postgres server that listens on member's port.
func postmasterPID(t *testing.T, member string) int {
	t.Helper()
	_, port, _ := strings.Cut(member, ":")
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) > 4 && strings.HasSuffix(args[0], "/bin/postgres") && strings.Contains(string(b), "\x00-p\x00"+port+"\x00") {
			return pid
		}
	}
	t.Fatalf("no postgres process listening on port %s", port)
	return 0
}

// notesApp builds examples/postgres into a directory that pier deploy
// --no-build takes, after checking that PostgreSQL is there for the
// appliance (scripts/setup installs it).
func notesApp(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat("/usr/lib/postgresql/15/bin/postgres"); err != nil {
		t.Fatal("PostgreSQL 15 is not installed: scripts/setup installs it")
	}
	appDir := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(appDir, "notes"), "../../examples/postgres")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the example: %v\n%s", err, out)
	}
	if err := os.WriteFile(filepath.Join(appDir, "Procfile"), []byte("web: ./notes\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return appDir
}

// viaRouter is a resource URL as the test reaches it: apps' URLs name the
// member at <process>.<system app>.pier.internal, which only jobs resolve,
// so the test goes through the resource's TCP route on the router, which
// follows the member wherever it runs, with the URL's credentials.
func (u cliUser) viaRouter(resource, rawURL string) string {
	u.t.Helper()
	var info api.ResourceInfo
	if err := json.Unmarshal([]byte(u.must("resources:info", resource, "--json")), &info); err != nil || info.Port == 0 {
		u.t.Fatalf("resources:info %s: %v (port %d)", resource, err, info.Port)
	}
	parsed, err := url.Parse(rawURL)
	if err != nil {
		u.t.Fatalf("resource URL %q: %v", rawURL, err)
	}
	parsed.Host = net.JoinHostPort("127.0.0.1", strconv.Itoa(info.Port))
	return parsed.String()
}
