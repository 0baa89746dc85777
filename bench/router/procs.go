package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is a child process of the benchmark (the router, nginx, HAProxy),
// its output in a file.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed once the process has exited
	err     error
}

// procs holds every child still to be stopped, so that the cleanup, the
// signal handler and a panic all find them.
var procs struct {
	sync.Mutex
	list []*proc
}

// startProc starts cmd in its own process group (nginx's workers join it),
// so that a Ctrl-C at the terminal reaches only the benchmark, which then
// stops the group as a whole. Pdeathsig kills the group's leader if the
// benchmark is killed outright; a router child also exits when its stdin,
// a pipe from the benchmark, closes.
func startProc(name, logPath string, cmd *exec.Cmd) (*proc, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	if cmd.Stdout == nil {
		cmd.Stdout = logFile
	}
	cmd.Stderr = logFile
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	}
	procs.Lock()
	defer procs.Unlock()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	procs.list = append(procs.list, p)
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the process group, then SIGKILL after grace, and
// reports whether the leader is gone and no process of the group is left.
func (p *proc) stop(grace time.Duration) bool {
	pgid := p.pid()
	syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
	}
	// Workers (nginx's) may outlive their master by a moment.
	for range 50 {
		if p.exited() && len(groupPIDs(pgid)) == 0 {
			return true
		}
		syscall.Kill(-pgid, syscall.SIGKILL)
		time.Sleep(20 * time.Millisecond)
	}
	return p.exited() && len(groupPIDs(pgid)) == 0
}

// stopAll stops every child started, and returns those that would not die.
func stopAll() []string {
	procs.Lock()
	list := procs.list
	procs.list = nil
	procs.Unlock()
	var left []string
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, p := range list {
		wg.Go(func() {
			if !p.stop(3 * time.Second) {
				mu.Lock()
				left = append(left, fmt.Sprintf("%s (pid %d)", p.name, p.pid()))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return left
}

// tail is the end of the process's output, for an error message.
func (p *proc) tail(lines int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return ""
	}
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// groupPIDs lists the live processes of process group pgid.
func groupPIDs(pgid int) []int {
	ents, _ := filepath.Glob("/proc/[0-9]*/stat")
	var out []int
	for _, e := range ents {
		b, err := os.ReadFile(e)
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...; comm may hold spaces.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 3 || f[0] == "Z" {
			continue
		}
		if g, _ := strconv.Atoi(f[2]); g == pgid {
			pid, _ := strconv.Atoi(strings.Fields(s)[0])
			out = append(out, pid)
		}
	}
	return out
}

// measuredPIDs is groupPIDs less the benchmark's own reaper processes.
func measuredPIDs(pgid int) []int {
	pids := groupPIDs(pgid)
	return slices.DeleteFunc(pids, func(pid int) bool {
		_, ok := reaperPIDs.Load(pid)
		return ok
	})
}

// statusKB reads a "kB" field (VmRSS, VmHWM) of /proc/<pid>/status.
func statusKB(pid int, field string) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			fs := strings.Fields(rest)
			if len(fs) > 0 {
				n, _ := strconv.ParseInt(fs[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

// groupRSS is the VmRSS of every process of group pgid, summed, in bytes.
// For several processes (nginx's master and workers) the pages they share
// count once per process: an upper bound.
func groupRSS(pgid int) int64 {
	var kb int64
	for _, pid := range measuredPIDs(pgid) {
		kb += statusKB(pid, "VmRSS")
	}
	return kb << 10
}

// rssSampler records the peak of groupRSS(pgid) until stopped.
type rssSampler struct {
	stopCh chan struct{}
	done   chan struct{}
	peak   int64
}

func sampleRSS(pgid int, every time.Duration) *rssSampler {
	s := &rssSampler{stopCh: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			s.peak = max(s.peak, groupRSS(pgid))
			select {
			case <-s.stopCh:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// stop ends the sampling and returns the peak in bytes.
func (s *rssSampler) stop() int64 {
	close(s.stopCh)
	<-s.done
	return s.peak
}

// reaperEnv marks this program re-executed as a reaper: a process that
// runs a command in its own process group and kills the whole group when
// the benchmark dies, however it dies (its stdin, a pipe from the
// benchmark, closes). nginx needs one: its workers outlive their master,
// so the master's Pdeathsig alone would leave them serving.
const reaperEnv = "PIER_BENCH_REAPER"

// reaperPIDs are the reapers started, left out of memory and CPU figures.
var reaperPIDs sync.Map

// reaped returns a command that runs bin with args under a reaper; start
// it with startProc, then call noteReaper.
func reaped(bin string, args ...string) (*exec.Cmd, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, append([]string{bin}, args...)...)
	cmd.Env = append(os.Environ(), reaperEnv+"=1")
	// No Pdeathsig: the reaper must live to kill the group when we die.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// cmd keeps the write end open until the reaper exits.
	if _, err := cmd.StdinPipe(); err != nil {
		return nil, err
	}
	return cmd, nil
}

func noteReaper(p *proc) { reaperPIDs.Store(p.pid(), true) }

// reaper is main in a reaper process: it runs args in its own process
// group (startProc made one) and exits with it; when its stdin closes
// first, it kills the group, itself included. A SIGTERM to the group (the
// benchmark's stop) reaches the command, which shuts down; the reaper
// waits for it, so that its exit is collected here rather than left to
// init. (Caught, not ignored: an ignored signal stays ignored across exec.)
func reaper(args []string) int {
	if len(args) == 0 {
		return 2
	}
	signal.Notify(make(chan os.Signal, 1), syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "reaper:", err)
		return 1
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	eof := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(eof)
	}()
	select {
	case <-exited:
		return max(cmd.ProcessState.ExitCode(), 0)
	case <-eof:
		syscall.Kill(0, syscall.SIGKILL)
		return 1
	}
}
