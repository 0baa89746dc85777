package shim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/runtime"
)

// LogSink receives the job's output streams; the job log writer
// implements it.
type LogSink interface {
	Stream(name string) io.WriteCloser
	Close() error
}

// Run supervises the job configured in jobDir until it exits, serving the
// control socket meanwhile. A job that already has a result is left alone;
// one that started under a shim that has since died cannot be re-attached
// to, so it is killed and recorded as failed.
func Run(ctx context.Context, jobDir string, rt runtime.Runtime, logs LogSink, log *slog.Logger) error {
	cfg, err := ReadConfig(jobDir)
	if err != nil {
		return fmt.Errorf("shim: %w", err)
	}
	if r, err := ReadResult(jobDir); err != nil || r != nil {
		return err
	}
	if s, err := ReadStarted(jobDir); err != nil {
		return err
	} else if s != nil {
		rt.Delete(cfg.Spec.ID)
		return writeJSON(filepath.Join(jobDir, exitFile), &Result{
			Exit:  runtime.Exit{Code: 137, Signal: "SIGKILL", Started: s.Time, Finished: time.Now()},
			Error: "the job's supervisor died",
		})
	}
	att := newAttacher(cfg.Spec.TTY, log)
	stdout, stderr := logs.Stream("stdout"), logs.Stream("stderr")
	sio := runtime.IO{Stdout: att.output(stdout, api.FrameStdout), Stderr: att.output(stderr, api.FrameStderr)}
	var stdinR *os.File
	closeStdinR := func() {
		if stdinR != nil {
			stdinR.Close()
			stdinR = nil
		}
	}
	defer closeStdinR()
	if cfg.Stdin && !cfg.Spec.TTY {
		// Before the socket is served, so that no input can come first.
		r, w, err := os.Pipe()
		if err != nil {
			return fmt.Errorf("shim: stdin: %w", err)
		}
		stdinR, sio.Stdin = r, r
		att.setStdin(w)
	}
	srv, err := listen(cfg.Socket, cfg.Spec.ID, rt, att, log)
	if err != nil {
		att.closeStdin()
		return err
	}
	defer srv.close()

	if cfg.Stdin || cfg.Spec.TTY {
		wait := cfg.AttachWait
		if wait <= 0 {
			wait = api.AttachWait
		}
		if !att.waitFirst(ctx, wait) {
			log.Info("nobody attached in time; starting without", "job", cfg.Spec.ID, "waited", wait)
			if !cfg.Spec.TTY {
				att.closeStdin()
			}
		}
		cfg.Spec.ConsoleSize = att.initialSize()
	}
	var consoleDone chan struct{}
	if cfg.Spec.TTY {
		// The terminal's output is the job's stdout; the pty master is
		// ours from here on.
		out := sio.Stdout
		sio.Console = func(master *os.File) {
			att.setConsole(master)
			consoleDone = make(chan struct{})
			go func() {
				defer close(consoleDone)
				_, _ = io.Copy(out, master) // ends with EIO once the job is gone
			}()
		}
	}
	exit, runErr := rt.Run(ctx, cfg.Spec, sio, func(pid int) {
		closeStdinR() // the job has it now
		st := &Started{PID: pid, Time: time.Now()}
		if err := writeJSON(filepath.Join(jobDir, startedFile), st); err != nil {
			log.Error("record start", "job", cfg.Spec.ID, "err", err)
		}
		srv.setStarted(st)
	})
	closeStdinR()
	if consoleDone != nil {
		// The master reads EIO as soon as the last process holding the
		// terminal is gone; one that escaped the job is not waited for.
		select {
		case <-consoleDone:
		case <-time.After(5 * time.Second):
		}
		att.closeConsole()
		<-consoleDone
	}
	stdout.Close()
	stderr.Close()
	logs.Close()
	res := &Result{Exit: exit}
	if runErr != nil {
		res.Error = runErr.Error()
		if errors.Is(runErr, context.Canceled) && exit.Finished.IsZero() {
			res.Error = "killed by its supervisor"
		}
	}
	// The result is on disk before anyone is told, so an agent that misses
	// the socket still finds it.
	if err := writeJSON(filepath.Join(jobDir, exitFile), res); err != nil {
		return err
	}
	att.finish(attachExit(res))
	srv.finish(res)
	return nil
}

// Remove deletes a finished job's directory and socket.
func Remove(jobDir string) error {
	if cfg, err := ReadConfig(jobDir); err == nil && cfg.Socket != "" {
		os.Remove(cfg.Socket)
	}
	return os.RemoveAll(jobDir)
}
