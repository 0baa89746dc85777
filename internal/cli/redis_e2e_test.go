package cli_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pierpaas/pier/api"
)

// TestRedisResource is issue 15's Redis walk-through: resources:add
// redis -a APP gives the app REDIS_URL, which reaches the server through
// the router with the app's own user; redis:cli works through the
// cluster; a write survives kill -9 of redis-server (the append-only
// file on the volume); removal takes REDIS_URL and the volume.
func TestRedisResource(t *testing.T) {
	if _, err := os.Stat("/usr/bin/redis-server"); err != nil {
		t.Skip("redis-server is not installed (scripts/setup installs it)")
	}
	p := startUp(t, filepath.Join(t.TempDir(), "data"), freeUpPorts(t))
	u := cliUser{t, p}
	u.must("create", "cache")
	out := u.must("resources:add", "redis", "-a", "cache", "--name", "kv", "--size", "128M")
	if !strings.Contains(out, "Attached to cache as REDIS_URL") {
		t.Fatalf("resources:add said %q", out)
	}
	var redisURL string
	waitUntil(t, "the release with REDIS_URL", 30*time.Second, func() bool {
		out, _, code := u.run("config:get", "REDIS_URL", "-a", "cache")
		redisURL = strings.TrimSpace(out)
		return code == 0 && redisURL != ""
	})
	redisURL = u.viaRouter("kv", redisURL)

	// What an app does with REDIS_URL: its user, through the router,
	// which may take a moment to route the new port.
	waitUntil(t, "the first write", 30*time.Second, func() bool {
		return redisTry(redisURL, "SET", "greeting", "hello") == "OK"
	})
	if got := redisDo(t, redisURL, "GET", "greeting"); got != "hello" {
		t.Fatalf("GET: %q", got)
	}
	if got := redisDo(t, redisURL, "CONFIG", "SET", "dir", "/tmp"); !strings.HasPrefix(got, "-NOPERM") {
		t.Fatalf("CONFIG SET as the app's user: %q", got)
	}
	if out := u.must("redis:cli", "kv", "-a", "cache", "-c", "GET greeting"); strings.TrimSpace(out) != "hello" {
		t.Fatalf("redis:cli: %q", out)
	}

	// kill -9 of redis-server, a second and more after the write: the
	// append-only file, fsynced every second, brings it back.
	var info api.ResourceInfo
	if err := json.Unmarshal([]byte(u.must("resources:info", "kv", "--json")), &info); err != nil {
		t.Fatal(err)
	}
	if info.State != api.ResourceAvailable || info.Stats["version"] == "" || info.Volume == "" {
		t.Fatalf("resources:info: %+v", info)
	}
	time.Sleep(1500 * time.Millisecond)
	if err := syscall.Kill(redisServerPID(t, info.Member), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the key back after the kill", 60*time.Second, func() bool {
		return redisTry(redisURL, "GET", "greeting") == "hello"
	})

	u.must("resources:remove", "kv", "--confirm", "kv")
	if out := u.must("env", "-a", "cache"); strings.Contains(out, "REDIS_URL") {
		t.Fatalf("REDIS_URL left: %s", out)
	}
	if out := u.must("volumes", "--json"); strings.Contains(out, info.Volume) {
		t.Fatalf("volume %s left: %s", info.Volume, out)
	}
}

// redisDo runs one command at rawURL as its user, failing the test if
// the server cannot be reached.
func redisDo(t *testing.T, rawURL string, args ...string) string {
	t.Helper()
	got := redisTry(rawURL, args...)
	if strings.HasPrefix(got, "!") {
		t.Fatalf("redis %v: %s", args, got)
	}
	return got
}

// redisTry is redisDo's exchange: AUTH, then the command; an error reply
// comes back as "-ERR …", a failure to talk as "!…".
func redisTry(rawURL string, args ...string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "!" + err.Error()
	}
	c, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		return "!" + err.Error()
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	pw, _ := u.User.Password()
	r := bufio.NewReader(c)
	send := func(args ...string) string {
		var b strings.Builder
		fmt.Fprintf(&b, "*%d\r\n", len(args))
		for _, a := range args {
			fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
		}
		if _, err := c.Write([]byte(b.String())); err != nil {
			return "!" + err.Error()
		}
		line, err := r.ReadString('\n')
		if err != nil {
			return "!" + err.Error()
		}
		line = strings.TrimSuffix(line, "\r\n")
		if strings.HasPrefix(line, "$") {
			n, _ := strconv.Atoi(line[1:])
			if n < 0 {
				return "(nil)"
			}
			buf := make([]byte, n+2)
			if _, err := io.ReadFull(r, buf); err != nil {
				return "!" + err.Error()
			}
			return string(buf[:n])
		}
		if strings.HasPrefix(line, "+") {
			return line[1:]
		}
		return line
	}
	if got := send("AUTH", u.User.Username(), pw); got != "OK" {
		return "!auth: " + got
	}
	return send(args...)
}

// redisServerPID finds the redis-server that listens on member's port.
func redisServerPID(t *testing.T, member string) int {
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
		// Redis sets its title: "/usr/bin/redis-server 0.0.0.0:PORT".
		if cmd := strings.TrimRight(string(b), "\x00 "); strings.Contains(cmd, "redis-server") && strings.HasSuffix(cmd, ":"+port) {
			return pid
		}
	}
	t.Fatalf("no redis-server listening on port %s", port)
	return 0
}
