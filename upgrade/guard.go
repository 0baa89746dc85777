package upgrade

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"
)

// GuardCommand is the hidden subcommand that runs Guard.
const GuardCommand = "upgrade-guard"

const (
	guardPoll = 100 * time.Millisecond
	// guardGrace is how long a node told to stop has before it is killed.
	guardGrace = 15 * time.Second
)

// startGuard starts the guard of a trial: the old binary (at pier.prev
// now), in a session of its own so that it outlives the node it guards.
func startGuard(f Files, pid int) error {
	cmd := exec.Command(f.Prev(), GuardCommand, f.Exe, strconv.Itoa(pid))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Dir = "/"
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("upgrade: start the guard: %w", err)
	}
	// Reaped by the re-executed node (selfexec.ReapInherited) or init.
	return cmd.Process.Release()
}

// Guard watches a node on probation (pid, running the binary at exe) and
// gives up on its new binary when the node dies or its trial ends before
// the upgrade loop confirmed it: the old binary goes back in place, the
// order is marked failed (so the old binary does not obey it again), and
// the node is stopped, for its supervisor to start the old binary. The
// guard runs the old binary, which is known to work: a new one that
// crashes or never becomes ready cannot keep a node down.
func Guard(ctx context.Context, exe string, pid int, log *slog.Logger) error {
	f := Files{Exe: exe}
	m, err := f.readTrial()
	if err != nil || m == nil || m.PID != pid {
		return err // nothing on probation: confirmed before we looked
	}
	for {
		cur, err := f.readTrial()
		if err != nil {
			return err
		}
		if cur == nil || cur.Order != m.Order {
			log.Info("upgrade confirmed; guard done", "order", m.Order)
			return nil
		}
		var reason string
		switch {
		case !alive(pid):
			reason = "the node exited with the new binary"
		case time.Now().After(m.Deadline):
			reason = "the node was not confirmed healthy before its trial ended"
		}
		if reason != "" {
			return giveUp(f, *m, pid, reason, log)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(guardPoll):
		}
	}
}

// giveUp puts the old binary back and stops the node if it still runs.
func giveUp(f Files, m trialMarker, pid int, reason string, log *slog.Logger) error {
	log.Warn("upgrade: giving up on the new binary", "order", m.Order, "reason", reason)
	err := errors.Join(f.Revert(), f.writeFailed(failedMarker{Order: m.Order, Reason: reason}), f.removeTrial())
	if alive(pid) {
		syscall.Kill(pid, syscall.SIGTERM)
		deadline := time.Now().Add(guardGrace)
		for alive(pid) && time.Now().Before(deadline) {
			time.Sleep(guardPoll)
		}
		if alive(pid) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	return err
}

// alive says whether pid runs (a zombie does not).
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// pid (comm) S ...: the state follows the last ')'.
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == ')' {
			return i+2 >= len(b) || b[i+2] != 'Z'
		}
	}
	return true
}
