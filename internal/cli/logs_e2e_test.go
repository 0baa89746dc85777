package cli_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/client"
	"github.com/pierpaas/pier/internal/cli"
	"github.com/pierpaas/pier/internal/cliconfig"
	"github.com/pierpaas/pier/internal/testutil"
)

// apiClient is a controller client with the CLI config of the `pier up`.
func apiClient(t *testing.T, p *upProc) *client.Controller {
	t.Helper()
	cfg, err := cliconfig.Load(filepath.Join(p.configHome, "pier", "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	cl, err := cliconfig.Resolve(cfg, "", func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg, err := cl.TLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.NewController(cl.URL, cl.Key, tlsCfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// waitForConfig waits for `pier up` to write the CLI's config, which it
// does after /readyz answers.
func waitForConfig(t *testing.T, p *upProc) {
	waitUntil(t, "pier up to write the CLI config", 20*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(p.configHome, "pier", "config.json"))
		return err == nil
	})
}

// pierLogs is `pier logs ARGS` when the binary has the command, or the
// same through the API and the CLI's formatting when it does not yet.
func pierLogs(t *testing.T, u cliUser, hasCmd bool, app, job string) string {
	t.Helper()
	if hasCmd {
		args := []string{"logs", "-a", app, "-n", "1000"}
		if job != "" {
			args = append(args, "-j", job)
		}
		return u.must(args...)
	}
	var b strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := apiClient(t, u.p).Logs(ctx, app, client.LogsQuery{Lines: 1000, Job: job}, func(l api.AppLogLine) error {
		fmt.Fprintln(&b, cli.FormatLogLine(&l))
		return nil
	})
	if err != nil {
		t.Logf("logs: %v", err)
	}
	return b.String()
}

// TestLogsEndToEnd drives a real `pier up`: a detached one-off's output
// reaches `pier logs -j`, in Heroku's format with the platform's lines;
// a follower sees a new job's line; a drain gets RFC 5424 messages.
func TestLogsEndToEnd(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	p := startUp(t, dataDir, freeUpPorts(t))
	u := cliUser{t, p}
	waitForConfig(t, p)
	_, _, code := u.run("logs", "--help")
	hasCmd := code == 0
	if !hasCmd {
		t.Log("pier logs is not in the command table yet: reading logs through the API")
	}
	u.must("create", "tools")
	releaseApp(t, u, "tools")

	id := strings.TrimSpace(u.must("run", "-a", "tools", "--detach", "--", "sh", "-c", `echo "hello from $PIER_JOB_ID"; echo oops >&2; echo bye`))
	lineRE := regexp.MustCompile(`(?m)^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00 app\[[a-z]+\.` + regexp.QuoteMeta(id) + `\]: hello from ` + regexp.QuoteMeta(id) + `$`)
	var out string
	waitUntil(t, "the job's lines in pier logs", 30*time.Second, func() bool {
		out = pierLogs(t, u, hasCmd, "tools", id)
		return lineRE.MatchString(out) && strings.Contains(out, "]: bye") &&
			strings.Contains(out, "Process exited with status 0")
	})
	// stdout and stderr are separate pipes: only each one's order holds.
	if strings.Index(out, "hello from") > strings.Index(out, "]: bye") || !strings.Contains(out, "]: oops") {
		t.Fatalf("lines out of order:\n%s", out)
	}
	t.Logf("pier logs -j %s:\n%s", id, out)
	if !hasCmd {
		return
	}

	// A follower sees a new job's line.
	cmd := exec.Command(pierBin, "logs", "-a", "tools", "-f", "-n", "0")
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+p.configHome)
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	followed := &testutil.SyncBuffer{}
	go io.Copy(followed, stdout)
	time.Sleep(500 * time.Millisecond)
	id2 := strings.TrimSpace(u.must("run", "-a", "tools", "--detach", "--", "echo", "second job"))
	waitUntil(t, "the followed line", 30*time.Second, func() bool {
		return strings.Contains(followed.String(), "."+id2+"]: second job")
	})

	// A drain.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	msgs := make(chan string, 100)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		br := bufio.NewReader(conn)
		for {
			n, err := br.ReadString(' ')
			if err != nil {
				return
			}
			size, _ := strconv.Atoi(strings.TrimSpace(n))
			b := make([]byte, size)
			if _, err := io.ReadFull(br, b); err != nil {
				return
			}
			msgs <- string(b)
		}
	}()
	drainURL := "syslog://" + ln.Addr().String()
	u.must("drains", "add", drainURL, "-a", "tools")
	if list := u.must("drains", "-a", "tools"); !strings.Contains(list, drainURL) {
		t.Fatalf("pier drains:\n%s", list)
	}
	time.Sleep(time.Second) // the aggregator picks the drain up from the store
	id3 := strings.TrimSpace(u.must("run", "-a", "tools", "--detach", "--", "echo", "to the drain"))
	msgRE := regexp.MustCompile(`^<190>1 \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z tools app [a-z]+\.` + regexp.QuoteMeta(id3) + ` - - to the drain$`)
	deadline := time.After(30 * time.Second)
	for found := false; !found; {
		select {
		case m := <-msgs:
			found = msgRE.MatchString(m)
		case <-deadline:
			t.Fatal("the drain did not get the job's line")
		}
	}
	u.must("drains", "remove", drainURL, "-a", "tools")
	if list := u.must("drains", "-a", "tools"); strings.Contains(list, drainURL) {
		t.Fatalf("pier drains after remove:\n%s", list)
	}
}

// TestLogsOfAWebApp: a deployed web app's log holds the platform's lines
// (deploy, scale, the job coming up), the router's access line and the
// app's own output.
func TestLogsOfAWebApp(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	p := startUp(t, dataDir, freeUpPorts(t))
	u := cliUser{t, p}
	waitForConfig(t, p)
	_, _, code := u.run("logs", "--help")
	hasCmd := code == 0
	u.must("create", "site")
	u.must("deploy", "-a", "site", writeApp(t, "web: python3 -m http.server $PORT\n", map[string]string{"index.html": "hi\n"}))
	waitUntil(t, "the router to serve the app", 20*time.Second, func() bool {
		code, body, _ := get(p, "site", "/index.html")
		return code == 200 && body == "hi\n"
	})
	want := []*regexp.Regexp{
		regexp.MustCompile(`(?m) pier\[api\]: Deploy v1 started \(one-by-one\)$`),
		regexp.MustCompile(`(?m) pier\[api\]: Deploy v1 finished$`),
		regexp.MustCompile(`(?m) pier\[api\]: Scaled v1 to web@1$`),
		regexp.MustCompile(`(?m) pier\[web\.[a-z0-9-]+\]: State changed to up$`),
		regexp.MustCompile(`(?m) pier\[router\]: at=info method=GET path="/index.html" host=site\.\S+ request_id=\S+ fwd="127.0.0.1" backend=\S+ service=[0-9.]+ms status=200 bytes=3$`),
		regexp.MustCompile(`(?m) app\[web\.[a-z0-9-]+\]: .*"GET /index.html HTTP/1.1" 200`),
	}
	var out string
	waitUntil(t, "the app's log", 30*time.Second, func() bool {
		out = pierLogs(t, u, hasCmd, "site", "")
		for _, re := range want {
			if !re.MatchString(out) {
				return false
			}
		}
		return true
	})
	t.Logf("pier logs:\n%s", out)
}

// TestLogsSurviveARestart: the aggregator keeps lines in memory only; a
// `pier up` killed and started again gets them back from the host's files.
func TestLogsSurviveARestart(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	ports := freeUpPorts(t)
	p := startUp(t, dataDir, ports)
	u := cliUser{t, p}
	waitForConfig(t, p)
	_, _, code := u.run("logs", "--help")
	hasCmd := code == 0
	u.must("create", "tools")
	releaseApp(t, u, "tools")
	id := strings.TrimSpace(u.must("run", "-a", "tools", "--detach", "--", "sh", "-c", "for i in 1 2 3 4 5; do echo line $i; done"))
	has := func(u cliUser) bool {
		out := pierLogs(t, u, hasCmd, "tools", id)
		for i := 1; i <= 5; i++ {
			if strings.Count(out, fmt.Sprintf("]: line %d\n", i)) != 1 {
				return false
			}
		}
		return true
	}
	waitUntil(t, "the job's lines", 30*time.Second, func() bool { return has(u) })

	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
	p = startUp(t, dataDir, ports)
	u = cliUser{t, p}
	waitUntil(t, "the job's lines after the restart, once each", 30*time.Second, func() bool { return has(u) })
}
