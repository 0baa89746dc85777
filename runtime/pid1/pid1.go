package pid1

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/term"
)

// Subcommand is the pier subcommand that runs Main.
const Subcommand = "init"

// StatusFD is the descriptor on which a runtime hands the init its status
// pipe: the first one after stdio.
const StatusFD = 3

// Args is the argv that runs args under the init at binary, reporting on
// statusFD when it is not negative.
func Args(binary string, statusFD int, args []string) []string {
	out := []string{binary, Subcommand}
	if statusFD >= 0 {
		out = append(out, "--status-fd="+strconv.Itoa(statusFD))
	}
	return append(append(out, "--"), args...)
}

// Command is what the init runs.
type Command struct {
	Args []string
	Env  []string
	Dir  string
}

// Main is `pier init [--status-fd=N] -- COMMAND [ARG...]`; it returns the
// exit code to leave with. It parses its arguments by hand: it runs before
// everything else in every container, so it starts nothing it does not
// need. resolve, if not nil, may say what to run for a command line in
// its stead, in the init's environment and directory otherwise (the slug
// runner's command, so that the pier binary does not start twice).
func Main(args []string, resolve func(argv []string) (Command, bool)) int {
	statusFD := -1
	for len(args) > 0 && args[0] != "--" {
		v, ok := strings.CutPrefix(args[0], "--status-fd=")
		n, err := strconv.Atoi(v)
		if !ok || err != nil || n < 0 {
			fmt.Fprintf(os.Stderr, "pier init: unknown argument %q (usage: pier init [--status-fd=N] -- COMMAND [ARG...])\n", args[0])
			return 2
		}
		statusFD = n
		args = args[1:]
	}
	if len(args) < 2 {
		fmt.Fprintln(os.Stderr, "pier init: no command (usage: pier init [--status-fd=N] -- COMMAND [ARG...])")
		return 2
	}
	var status *os.File
	if statusFD >= 0 {
		// Inherited as it is, without close-on-exec: the command must not
		// hold it, or a reader would wait for the command's end too.
		syscall.CloseOnExec(statusFD)
		status = os.NewFile(uintptr(statusFD), "status")
	}
	cmd, ok := Command{}, false
	if resolve != nil {
		cmd, ok = resolve(args[1:])
	}
	if !ok {
		cmd = Command{Args: args[1:], Env: os.Environ()}
		if dir, err := os.Getwd(); err == nil {
			cmd.Dir = dir
		}
	}
	code, err := Run(cmd.Args, cmd.Env, cmd.Dir, status)
	if err != nil {
		fmt.Fprintf(os.Stderr, "pier init: %v\n", err)
		return 127
	}
	return code
}

// forwarded are the signals passed on to the command's process group.
// SIGKILL cannot be caught (and the kernel then kills the whole namespace
// anyway); SIGCHLD is the init's own; SIGURG is Go's.
var forwarded = []os.Signal{
	syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT,
	syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH,
}

// Run runs argv (its first element looked up in env's PATH when it has no
// slash) as a child, passing the forwarded signals on to its process
// group and reaping every child until it exits, and returns the exit code
// to leave with: the command's, or 128 plus the signal that ended it. The
// command's wait status, or the error that kept it from starting, is
// written to status if it is not nil.
func Run(argv, env []string, dir string, status *os.File) (int, error) {
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, forwarded...)
	p, err := start(argv, env, dir)
	if err != nil {
		if status != nil {
			WriteError(status, err)
		}
		return 0, err
	}
	// What the Go runtime allocated to start is not needed again: this
	// process stays for the job's whole life, on the job's memory limit.
	debug.FreeOSMemory()
	pid := p.Pid
	exited := make(chan syscall.WaitStatus, 1)
	go reap(pid, exited)
	for {
		select {
		case sig := <-sigs:
			// To the group: a command of several processes (a pipeline, a
			// shell without exec) stops whole, as on Heroku. A command that
			// left its group has only its own pid to signal.
			if err := syscall.Kill(-pid, sig.(syscall.Signal)); errors.Is(err, syscall.ESRCH) {
				_ = syscall.Kill(pid, sig.(syscall.Signal))
			}
		case ws := <-exited:
			if status != nil {
				WriteStatus(status, ws)
			}
			return ExitCode(ws), nil
		}
	}
}

func start(argv, env []string, dir string) (*os.Process, error) {
	path, err := lookPath(argv[0], env)
	if err != nil {
		return nil, fmt.Errorf("exec %s: %w", argv[0], err)
	}
	attr := &syscall.SysProcAttr{Setpgid: true}
	if term.IsTerminal(0) {
		// The command's group takes the terminal: its signals (Ctrl-C)
		// then reach the command, once, and the command may read it.
		attr.Foreground, attr.Ctty = true, 0
	}
	pa := &os.ProcAttr{Dir: dir, Env: env, Files: []*os.File{os.Stdin, os.Stdout, os.Stderr}, Sys: attr}
	p, err := os.StartProcess(path, argv, pa)
	if err != nil && attr.Foreground {
		// A terminal that is not the controlling one: without it.
		attr.Foreground = false
		p, err = os.StartProcess(path, argv, pa)
	}
	if err != nil {
		return nil, fmt.Errorf("exec %s: %w", argv[0], err)
	}
	return p, nil
}

// lookPath finds a command the way execvp does, in the PATH of the
// environment the command gets, which is not always the init's own.
func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	path := "/usr/local/bin:/usr/bin:/bin"
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], "PATH="); ok {
			path = v
			break
		}
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}

// reap waits for every child, adopted orphans included, and sends the
// wait status of pid when it ends.
func reap(pid int, exited chan<- syscall.WaitStatus) {
	for {
		var ws syscall.WaitStatus
		got, err := syscall.Wait4(-1, &ws, 0, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			// No child left to wait for: cannot happen while pid runs.
			exited <- syscall.WaitStatus(255 << 8)
			return
		}
		if got != pid || !(ws.Exited() || ws.Signaled()) {
			continue // an orphan, reaped; or the command stopped or continued
		}
		exited <- ws
		return
	}
}

// ExitCode is the exit code a shell reports for a wait status: the
// process's own, or 128 plus the signal that killed it.
func ExitCode(ws syscall.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}
