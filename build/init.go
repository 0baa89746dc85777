package build

import (
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/term"
)

// A container's first process is PID 1 of its PID namespace, and the
// kernel gives PID 1 no default signal actions: an app that installs no
// SIGTERM handler (python3 -m http.server, a shell script, sleep) ignores
// the SIGTERM of a stop and is killed only when the grace period ends.
// So when the slug runner is PID 1 it stays, as a minimal init (what
// tini and dumb-init do): the command runs as its child in a process
// group of its own, the stop signals the runner gets go to that group,
// orphans are reaped, and the runner exits as the command did.

// forwarded are the signals passed on to the command's process group.
// SIGKILL cannot be caught (and the kernel then kills the whole
// namespace anyway); SIGCHLD is the runner's own; SIGURG is Go's.
var forwarded = []os.Signal{
	syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT,
	syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH,
}

// runAsInit runs argv as PID 1's child and returns the exit code to
// leave with: the command's, or 128 plus the signal that ended it.
func runAsInit(argv, env []string, dir string) (int, error) {
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, forwarded...)
	attr := &syscall.SysProcAttr{Setpgid: true}
	if term.IsTerminal(0) {
		// A terminal's signals (Ctrl-C) then reach the command, once,
		// and the command may read it.
		attr.Foreground, attr.Ctty = true, 0
	}
	pa := &os.ProcAttr{Dir: dir, Env: env, Files: []*os.File{os.Stdin, os.Stdout, os.Stderr}, Sys: attr}
	p, err := os.StartProcess(argv[0], argv, pa)
	if err != nil && attr.Foreground {
		// A terminal that is not the controlling one: without it.
		attr.Foreground = false
		p, err = os.StartProcess(argv[0], argv, pa)
	}
	if err != nil {
		return 0, err
	}
	pid := p.Pid
	exited := make(chan int, 1)
	go reap(pid, exited)
	for {
		select {
		case sig := <-sigs:
			// To the group: a command of several processes (a pipeline,
			// a shell without exec) stops whole, as on Heroku.
			syscall.Kill(-pid, sig.(syscall.Signal))
		case code := <-exited:
			return code, nil
		}
	}
}

// reap waits for every child, adopted orphans included, and sends the
// exit code of pid when it ends.
func reap(pid int, exited chan<- int) {
	for {
		var ws syscall.WaitStatus
		got, err := syscall.Wait4(-1, &ws, 0, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			exited <- 255 // no child left to wait for: cannot happen while pid runs
			return
		}
		if got != pid {
			continue // an orphan: reaped, nothing more
		}
		switch {
		case ws.Exited():
			exited <- ws.ExitStatus()
		case ws.Signaled():
			exited <- 128 + int(ws.Signal())
		default:
			continue // stopped or continued: still running
		}
		return
	}
}
