package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pierpaas/pier/api"
)

// TestRedisBackups: keys written through the app's REDIS_URL, a
// snapshot captured and listed, every key flushed, the snapshot restored
// by a one-off job and the keys (and a TTL) back; then downloaded as an
// RDB file.
func TestRedisBackups(t *testing.T) {
	if _, err := os.Stat("/usr/bin/redis-server"); err != nil {
		t.Skip("redis-server is not installed (scripts/setup installs it)")
	}
	p := startUp(t, filepath.Join(t.TempDir(), "data"), freeUpPorts(t))
	u := cliUser{t, p}
	u.must("create", "cache")
	u.must("resources:add", "redis", "-a", "cache", "--name", "kv", "--size", "128M")
	var redisURL string
	waitUntil(t, "the release with REDIS_URL", 30*time.Second, func() bool {
		out, _, code := u.run("config:get", "REDIS_URL", "-a", "cache")
		redisURL = strings.TrimSpace(out)
		return code == 0 && redisURL != ""
	})
	redisURL = u.viaRouter("kv", redisURL)
	// The router may take a moment to route the new port.
	waitUntil(t, "the first write", 30*time.Second, func() bool {
		return redisTry(redisURL, "SET", "greeting", "hello") == "OK"
	})
	redisDo(t, redisURL, "RPUSH", "list", "a", "b", "c")
	redisDo(t, redisURL, "SET", "session", "s1", "EX", "3600")

	begin := time.Now()
	out := u.must("redis:backups:capture", "kv")
	t.Logf("capture took %s: %s", time.Since(begin).Round(time.Millisecond), out)
	var list []api.Backup
	if err := json.Unmarshal([]byte(u.must("redis:backups", "--json")), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].State != api.BackupSucceeded || list[0].Size == 0 || list[0].Type != "redis" {
		t.Fatalf("redis:backups: %+v", list)
	}
	id := list[0].ID

	if out := u.must("redis:cli", "kv", "-c", "FLUSHALL"); strings.TrimSpace(out) != "OK" {
		t.Fatalf("FLUSHALL: %q", out)
	}
	if got := redisDo(t, redisURL, "GET", "greeting"); got != "(nil)" {
		t.Fatalf("after FLUSHALL: %q", got)
	}
	begin = time.Now()
	out = u.must("redis:backups:restore", id, "kv")
	t.Logf("restore took %s: %s", time.Since(begin).Round(time.Millisecond), out)
	if got := redisDo(t, redisURL, "GET", "greeting"); got != "hello" {
		t.Fatalf("GET greeting after the restore: %q", got)
	}
	if got := redisDo(t, redisURL, "LINDEX", "list", "2"); got != "c" {
		t.Fatalf("LINDEX after the restore: %q", got)
	}
	if got := redisDo(t, redisURL, "TTL", "session"); !strings.HasPrefix(got, ":") || strings.HasPrefix(got, ":-") {
		t.Fatalf("TTL of session after the restore: %q", got)
	}

	file := filepath.Join(t.TempDir(), "kv.rdb")
	u.must("redis:backups:download", id, "-o", file)
	if b, err := os.ReadFile(file); err != nil || !strings.HasPrefix(string(b), "REDIS") {
		t.Fatalf("download: %v %.16q", err, b)
	}

	// A daily snapshot, then none; the backup deleted.
	if out := u.must("redis:backups:schedule", "--at", "03:30", "--keep-days", "2"); !strings.Contains(out, "kept 2 days") {
		t.Fatalf("schedule: %q", out)
	}
	var info api.ResourceInfo
	json.Unmarshal([]byte(u.must("resources:info", "kv", "--json")), &info)
	if s := info.BackupSchedule; s == nil || s.At != "03:30" {
		t.Fatalf("schedule: %+v", info.BackupSchedule)
	}
	u.must("redis:backups:unschedule", "kv")
	var after api.ResourceInfo
	json.Unmarshal([]byte(u.must("resources:info", "kv", "--json")), &after)
	if after.BackupSchedule != nil {
		t.Fatalf("after unschedule: %+v", after.BackupSchedule)
	}
	u.must("redis:backups:delete", id)
	if out := u.must("redis:backups", "--json"); strings.TrimSpace(out) != "[]" {
		t.Fatalf("after delete: %s", out)
	}
}
