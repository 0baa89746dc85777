// Command deploy measures push-to-serving time: it starts a single-node
// `pier up` in a temporary directory, pushes the Go and Node.js examples
// with the system git over HTTPS, and times each push from `git push` to
// the first answer of the new release through the router, once with an
// empty build cache (cold) and once more after a one-line change (warm).
//
//	go run ./bench/deploy [-examples go,node]
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pierpaas/pier/host/agent"
)

// example is an app to push and how to tell its releases apart.
type example struct {
	dir, file, from, to string // the warm push replaces from with to in file
}

var examples = map[string]example{
	"go":   {"go", "main.go", "Hello from Go", "Hello again from Go"},
	"node": {"node", "build.js", "Hello from Node.js", "Hello again from Node.js"},
}

func main() {
	which := flag.String("examples", "go,node", "examples to push")
	flag.Parse()
	root, err := os.MkdirTemp("", "pier-bench-deploy-")
	if err != nil {
		fatalf("%v", err)
	}
	defer os.RemoveAll(root)
	b := &bench{root: root}
	defer b.cleanup()
	if err := b.start(); err != nil {
		fatalf("%v", err)
	}
	fmt.Printf("%-6s %12s %12s\n", "app", "cold", "warm")
	for _, name := range strings.Split(*which, ",") {
		ex, ok := examples[name]
		if !ok {
			fatalf("unknown example %q", name)
		}
		cold, warm, err := b.measure(name, ex)
		if err != nil {
			b.cleanup()
			fatalf("%s: %v", name, err)
		}
		fmt.Printf("%-6s %12s %12s\n", name, cold.Round(10*time.Millisecond), warm.Round(10*time.Millisecond))
	}
}

type bench struct {
	root, pier string
	httpPort   int
	up         *exec.Cmd
}

func (b *bench) dataDir() string { return filepath.Join(b.root, "data") }

// env is what pier and git run with: the bench's own CLI config, and no
// override of git's CA file (some machines set one for the system CAs).
func (b *bench) env() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GIT_SSL_CAINFO=") {
			env = append(env, kv)
		}
	}
	return append(env, "XDG_CONFIG_HOME="+filepath.Join(b.root, "config"), "GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=bench", "GIT_AUTHOR_EMAIL=bench@example.com", "GIT_COMMITTER_NAME=bench", "GIT_COMMITTER_EMAIL=bench@example.com")
}

func (b *bench) run(dir, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Env = dir, b.env()
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

func (b *bench) start() error {
	b.pier = filepath.Join(b.root, "pier")
	if err := b.run(".", "go", "build", "-o", b.pier, "./cmd/pier"); err != nil {
		return err
	}
	ports := make([]string, 8)
	for i := range ports {
		ports[i] = strconv.Itoa(freePort())
	}
	b.httpPort, _ = strconv.Atoi(ports[5])
	b.up = exec.Command(b.pier, "up", "--data-dir", b.dataDir(),
		"--etcd-client-port", ports[0], "--etcd-peer-port", ports[1], "--api-port", ports[2], "--dns-port", ports[3],
		"--host-api-port", ports[4], "--http-port", ports[5], "--https-port", ports[6], "--git-ssh-port", ports[7])
	b.up.Env = b.env()
	log, err := os.Create(filepath.Join(b.root, "up.log"))
	if err != nil {
		return err
	}
	b.up.Stdout, b.up.Stderr = log, log
	if err := b.up.Start(); err != nil {
		return err
	}
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if b.run(".", b.pier, "apps") == nil {
			return nil
		}
	}
	return fmt.Errorf("pier up did not come up; see %s", log.Name())
}

// measure pushes an example twice and returns both push-to-serving times.
func (b *bench) measure(name string, ex example) (cold, warm time.Duration, err error) {
	dir := filepath.Join(b.root, name)
	if err := b.run(".", "cp", "-r", filepath.Join("examples", ex.dir), dir); err != nil {
		return 0, 0, err
	}
	app := "bench-" + name
	for _, args := range [][]string{{"git", "init", "-q", "-b", "main"}, {"git", "add", "-A"}, {"git", "commit", "-qm", "first"}, {b.pier, "create", app}} {
		if err := b.run(dir, args[0], args[1:]...); err != nil {
			return 0, 0, err
		}
	}
	if cold, err = b.pushUntil(dir, app, ex.from); err != nil {
		return 0, 0, err
	}
	file := filepath.Join(dir, ex.file)
	src, err := os.ReadFile(file)
	if err != nil {
		return 0, 0, err
	}
	if err := os.WriteFile(file, []byte(strings.Replace(string(src), ex.from, ex.to, 1)), 0o644); err != nil {
		return 0, 0, err
	}
	if err := b.run(dir, "git", "commit", "-qam", "one line"); err != nil {
		return 0, 0, err
	}
	warm, err = b.pushUntil(dir, app, ex.to)
	return cold, warm, err
}

// pushUntil pushes and waits until the router answers with want.
func (b *bench) pushUntil(dir, app, want string) (time.Duration, error) {
	start := time.Now()
	if err := b.run(dir, "git", "push", "pier", "main"); err != nil {
		return 0, err
	}
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if body, err := b.get(app); err == nil && strings.Contains(body, want) {
			return time.Since(start), nil
		}
	}
	return 0, fmt.Errorf("%s never answered %q", app, want)
}

func (b *bench) get(app string) (string, error) {
	req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:"+strconv.Itoa(b.httpPort)+"/", nil)
	req.Host = app + ".localhost"
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return string(body), err
}

// cleanup stops pier up and removes the containers and shims it left,
// which outlive it by design.
func (b *bench) cleanup() {
	if b.up != nil && b.up.Process != nil {
		b.up.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { b.up.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			b.up.Process.Kill()
		}
		b.up = nil
	}
	agent.Purge(filepath.Join(b.dataDir(), "host"))
}

func freePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fatalf("%v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench/deploy: "+format+"\n", args...)
	os.Exit(1)
}
