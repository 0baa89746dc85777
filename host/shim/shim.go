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
	srv, err := listen(cfg.Socket, cfg.Spec.ID, rt, log)
	if err != nil {
		return err
	}
	defer srv.close()

	stdout, stderr := logs.Stream("stdout"), logs.Stream("stderr")
	exit, runErr := rt.Run(ctx, cfg.Spec, runtime.IO{Stdout: stdout, Stderr: stderr}, func(pid int) {
		st := &Started{PID: pid, Time: time.Now()}
		if err := writeJSON(filepath.Join(jobDir, startedFile), st); err != nil {
			log.Error("record start", "job", cfg.Spec.ID, "err", err)
		}
		srv.setStarted(st)
	})
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
