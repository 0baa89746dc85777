package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is a pier daemon started by the benchmark, its output in a file.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed once the process has exited
	err     error
}

// startProc starts bin in its own process group, so that a Ctrl-C at the
// terminal reaches only the benchmark, which then stops jobs through the
// still-running agent before it stops the daemons. The daemons die with
// the benchmark if it is killed outright.
func startProc(name, logPath, bin string, args ...string) (*proc, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start pier %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// exited returns an error describing an unexpected exit, or nil.
func (p *proc) exited() error {
	if p.alive() {
		return nil
	}
	return fmt.Errorf("pier %s exited: %v (log: %s)", p.name, p.err, p.logPath)
}

// stop sends SIGTERM and, after grace, SIGKILL; it reports whether the
// process is gone.
func (p *proc) stop(grace time.Duration) bool {
	if p == nil {
		return true
	}
	if !p.alive() {
		return true
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return true
	case <-time.After(grace):
	}
	p.cmd.Process.Kill()
	select {
	case <-p.done:
		return true
	case <-time.After(5 * time.Second):
		return false
	}
}

// tail returns the last n lines of the process's output.
func (p *proc) tail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// freePorts returns n distinct ports that were free a moment ago, each
// free for TCP and UDP (the discovery DNS port takes both).
func freePorts(n int) ([]int, error) {
	var ports []int
	var held []interface{ Close() error }
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	for len(ports) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		held = append(held, l)
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue // taken for UDP; keep the TCP one held so it is not returned again
		}
		held = append(held, u)
		ports = append(ports, port)
	}
	return ports, nil
}

// waitReady polls the server's /readyz until it answers 200.
func waitReady(ctx context.Context, p *proc, apiPort int, timeout time.Duration) error {
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // only a readiness probe of our own child
	}}
	url := "https://127.0.0.1:" + strconv.Itoa(apiPort) + "/readyz"
	deadline := time.Now().Add(timeout)
	for {
		resp, err := hc.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if err := p.exited(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pier %s not ready after %s (log: %s)", p.name, timeout, p.logPath)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// memory is a process's resident set size, its peak, its anonymous
// (private heap and stacks) part, and its proportional set size (shared
// pages, such as the pier binary's text, divided among the processes that
// map them), in bytes.
type memory struct {
	RSS, HWM, Anon, PSS int64
}

// readMemory reads VmRSS, VmHWM and RssAnon from /proc/PID/status, and Pss
// from /proc/PID/smaps_rollup.
func readMemory(pid int) (memory, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memory{}, err
	}
	defer f.Close()
	var m memory
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 || fields[2] != "kB" {
			continue
		}
		kb, _ := strconv.ParseInt(fields[1], 10, 64)
		switch fields[0] {
		case "VmRSS:":
			m.RSS = kb * 1024
		case "VmHWM:":
			m.HWM = kb * 1024
		case "RssAnon:":
			m.Anon = kb * 1024
		}
	}
	if m.RSS == 0 {
		return m, fmt.Errorf("no VmRSS for pid %d", pid)
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid)); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if fields := strings.Fields(line); len(fields) == 3 && fields[0] == "Pss:" {
				kb, _ := strconv.ParseInt(fields[1], 10, 64)
				m.PSS = kb * 1024
			}
		}
	}
	return m, sc.Err()
}

// shimPIDs finds the `pier shim DIR` processes supervising jobs under
// jobsDir: this agent's shims and no one else's.
func shimPIDs(jobsDir string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(bytes.TrimRight(b, "\x00")), "\x00")
		if len(args) >= 3 && args[1] == "shim" && strings.HasPrefix(args[2], jobsDir+string(filepath.Separator)) {
			pids = append(pids, pid)
		}
	}
	return pids
}
