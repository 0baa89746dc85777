package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pierpaas/pier/host/agent"
	"github.com/pierpaas/pier/host/jobnet"
)

// A node is one machine of the cluster: a network namespace with its own
// address, a directory standing for its disk, and the one pier daemon it
// runs (a server, a host agent or a router).
type node struct {
	name string // s1, h1, r1: also the server's name, the host's id
	role string // "server", "host" or "router"
	ns   string // network namespace
	ip   string
	dir  string // baseDir/<name>: data/ and the daemon's log
	// argv builds the daemon's command line; it is called on every start
	// so a server that joined starts again with the same flags.
	argv func() []string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	starts int
}

func (n *node) dataDir() string { return filepath.Join(n.dir, "data") }
func (n *node) logPath() string { return filepath.Join(n.dir, n.role+".log") }

// bin is the node's own pier binary (a copy of pierBin), which an
// upgrade replaces in place.
func (n *node) bin() string { return filepath.Join(n.dir, "pier") }

func copyFile(src, dst string, mode os.FileMode) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, mode)
}

// start runs the daemon in the node's namespace, in a process group of
// its own so that a Ctrl-C at the test's terminal reaches only the test,
// which then tears everything down in order.
func (n *node) start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		select {
		case <-n.exited:
		default:
			return fmt.Errorf("%s: already running", n.name)
		}
	}
	log, err := os.OpenFile(n.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close()
	n.starts++
	fmt.Fprintf(log, "=== start %d at %s\n", n.starts, time.Now().Format(time.RFC3339Nano))
	argv := inNetns(n.ns, n.argv()...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Dir = n.dir
	cmd.Env = daemonEnv(n.dir)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: %w", n.name, err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	n.cmd, n.exited = cmd, exited
	return nil
}

// daemonEnv is the test's environment without anything that would point a
// daemon at another cluster or config.
func daemonEnv(dir string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PIER_") && !strings.HasPrefix(kv, "XDG_CONFIG_HOME=") {
			env = append(env, kv)
		}
	}
	return append(env, "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
}

func (n *node) running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return false
	}
	select {
	case <-n.exited:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL to the daemon alone (not the jobs a host agent
// started: shims run in sessions of their own) and waits for it to die.
func (n *node) kill() {
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-exited
}

// stop asks the daemon to stop as an operator (or systemd) would, and
// kills it if it has not stopped in time.
func (n *node) stop(grace time.Duration) error {
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.mu.Unlock()
	if cmd == nil {
		return nil
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
		return nil
	case <-time.After(grace):
		n.kill()
		return fmt.Errorf("%s did not stop within %s of SIGTERM", n.name, grace)
	}
}

// powerCut kills every process of the node, daemon, shims and containers.
func (n *node) powerCut() error { return killNetns(n.ns) }

// exitedCh is closed when the current daemon process has exited.
func (n *node) exitedCh() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.exited == nil {
		c := make(chan struct{})
		close(c)
		return c
	}
	return n.exited
}

// logTail is the end of the node's log, for failure messages.
func (n *node) logTail(max int) string {
	b, _ := os.ReadFile(n.logPath())
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}

// insecure is for readiness probes only: they ask whether something
// answers, not whom to trust.
var insecure = &http.Client{
	Timeout:   2 * time.Second,
	Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableKeepAlives: true},
}

// ready reports whether the daemon answers its readiness endpoint.
func (n *node) ready(ctx context.Context) error {
	var url string
	switch n.role {
	case "server":
		url = "https://" + n.ip + ":7300/readyz"
	case "host":
		url = fmt.Sprintf("https://%s:%d/readyz", n.ip, agent.DefaultAPIPort)
	case "router":
		url = fmt.Sprintf("http://%s:7600/readyz", n.ip) // pier router's --ops-port
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := insecure.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return nil
}

// waitReady waits for the daemon to be ready, failing early if it exits.
func (n *node) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	exited := n.exitedCh()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := n.ready(ctx)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %s: %v\n%s", n.name, timeout, err, n.logTail(3000))
		}
		select {
		case <-exited:
			return fmt.Errorf("%s exited while starting:\n%s", n.name, n.logTail(3000))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// cleanupHostDir removes a host's jobs for good: its containers (with
// their cgroups and mounts), its shims and its directories under /run.
func cleanupHostDir(dataDir string) { agent.Purge(dataDir) }

// reboot does to a powered-off host what a reboot does to its volatile
// state, and nothing more: containers and their cgroups are gone, mounts
// are gone, /run is empty. The data directory stays as it was, job
// bundles included, for the agent to sort out.
func reboot(dataDir string) error {
	runcRoot := agent.RunDirs(dataDir)[0]
	var errs []error
	if out, err := exec.Command("runc", "--root", runcRoot, "list", "--quiet").Output(); err == nil {
		for _, id := range strings.Fields(string(out)) {
			if err := run("runc", "--root", runcRoot, "delete", "--force", id); err != nil {
				errs = append(errs, err)
			}
			cg, _ := filepath.Glob("/sys/fs/cgroup/*/pier/" + id)
			for _, d := range cg {
				os.Remove(d)
			}
		}
	}
	unmountAll(dataDir)
	jobnet.ReleaseAll(agent.NetNSDir(dataDir))
	for _, d := range agent.RunDirs(dataDir) {
		if err := os.RemoveAll(d); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// runningContainers lists the running containers of app's web jobs on
// host h, from its runc root: what really runs, whatever the store says.
func runningContainers(h *node, app string) []string {
	out, err := exec.Command("runc", "--root", agent.RunDirs(h.dataDir())[0], "list", "--format", "json").Output()
	if err != nil {
		return nil
	}
	var list []struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	json.Unmarshal(out, &list)
	var ids []string
	for _, c := range list {
		if c.Status == "running" && strings.HasPrefix(c.ID, app+"-web-") {
			ids = append(ids, c.ID)
		}
	}
	return ids
}
