package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/term"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/client"
)

// attachTimeout bounds how long `pier host run` waits to be attached to a
// job it created; the agent waits for the job's shim meanwhile.
const attachTimeout = time.Minute

// runAttached creates a job with stdin (and a terminal if tty), attaches
// to it, and copies the user's stdin to it and its output back until it
// ends. With a terminal the local one is in raw mode meanwhile, so that
// keys, ^C included, go to the job, and it follows the local window's
// size. The job's exit code becomes pier's, as with followRun.
func runAttached(ctx context.Context, c attachTarget, tty bool) error {
	id, err := c.start(ctx, tty)
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, id)
	inFd, outFd := int(os.Stdin.Fd()), int(os.Stdout.Fd())
	var opts client.AttachOptions
	if tty {
		if cols, rows, err := term.GetSize(outFd); err == nil {
			opts.Rows, opts.Cols = clampSize(rows), clampSize(cols)
		}
	}
	actx, cancel := context.WithTimeout(ctx, attachTimeout)
	ac, err := c.attach(actx, id, opts)
	cancel()
	if err != nil {
		var apiErr *api.Error
		if errors.As(err, &apiErr) && apiErr.Status == http.StatusConflict {
			// It started without us and has ended: its output is in its
			// log, and its exit in its status.
			return c.follow(ctx, id)
		}
		// It would wait for input nobody sends.
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c.stop(sctx, id)
		return fmt.Errorf("attach to job %s: %w", id, err)
	}
	defer ac.Close()

	restore := func() {}
	if tty {
		state, err := term.MakeRaw(inFd)
		if err != nil {
			return fmt.Errorf("terminal: %w", err)
		}
		var once sync.Once
		restore = func() { once.Do(func() { term.Restore(inFd, state) }) }
		defer restore()
		winch := make(chan os.Signal, 1)
		signal.Notify(winch, syscall.SIGWINCH)
		defer func() { signal.Stop(winch); close(winch) }()
		go func() {
			for range winch {
				if cols, rows, err := term.GetSize(outFd); err == nil {
					ac.Resize(clampSize(rows), clampSize(cols))
				}
			}
		}()
	}
	go func() {
		if _, err := io.Copy(ac, os.Stdin); err == nil {
			ac.CloseStdin()
		}
	}()

	// An interrupt or hangup stops the job, whose output is still followed
	// to its end; a second one leaves at once. In raw mode the keyboard's
	// ^C is the job's, so these come from elsewhere.
	finished := make(chan struct{})
	defer close(finished)
	var interrupted, left atomic.Bool
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		select {
		case <-ctx.Done():
		case <-hup:
		case <-finished:
			return
		}
		interrupted.Store(true)
		again := make(chan os.Signal, 1)
		signal.Notify(again, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
		defer signal.Stop(again)
		fmt.Fprintf(os.Stderr, "pier: stopping %s (interrupt again to leave it)\r\n", id)
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := c.stop(sctx, id); err != nil {
			fmt.Fprintf(os.Stderr, "pier: stop: %v\r\n", err)
		}
		cancel()
		select {
		case <-again:
			left.Store(true)
			ac.Close()
		case <-finished:
		}
	}()

	var stderr io.Writer = os.Stderr
	if tty {
		stderr = nil // a terminal has one output stream
	}
	ex, err := ac.Copy(os.Stdout, stderr)
	restore()
	if left.Load() {
		return exitError{130}
	}
	wctx := context.Background()
	if err == nil {
		// The exit is known; the status, which says whether the job was
		// stopped, follows within moments.
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeout(wctx, 30*time.Second)
		defer cancel()
	} else {
		fmt.Fprintf(os.Stderr, "pier: lost the connection to job %s (%v); waiting for it to end\n", id, err)
	}
	st, werr := c.wait(wctx, id)
	switch {
	case werr == nil:
		return jobExit(st, interrupted.Load())
	case err == nil:
		if ex.Error != "" {
			return fmt.Errorf("job %s: %s", id, ex.Error)
		}
		if ex.ExitCode > 0 && ex.ExitCode <= 255 {
			return exitError{ex.ExitCode}
		}
		return nil
	}
	return fmt.Errorf("job %s: no final status: %w", id, werr)
}

// attachTarget is what runAttached runs a job through: a host agent
// (`pier host run`) or the controller (`pier run`).
type attachTarget interface {
	// start creates the job, waiting for an attach, and returns its id.
	start(ctx context.Context, tty bool) (string, error)
	attach(ctx context.Context, id string, opts client.AttachOptions) (*client.AttachConn, error)
	stop(ctx context.Context, id string) error
	// wait returns the job's final status.
	wait(ctx context.Context, id string) (*api.JobStatus, error)
	// follow reports a job that ended before it could be attached to.
	follow(ctx context.Context, id string) error
}

// hostTarget runs jobs on one host agent.
type hostTarget struct {
	c   *client.HostClient
	req api.RunJobRequest
}

func (h hostTarget) start(ctx context.Context, tty bool) (string, error) {
	req := h.req
	req.Stdin, req.TTY = true, tty
	job, err := h.c.Run(ctx, req)
	return job.ID, err
}

func (h hostTarget) attach(ctx context.Context, id string, opts client.AttachOptions) (*client.AttachConn, error) {
	return h.c.Attach(ctx, id, opts)
}

func (h hostTarget) stop(ctx context.Context, id string) error {
	_, err := h.c.Stop(ctx, id)
	return err
}

func (h hostTarget) wait(ctx context.Context, id string) (*api.JobStatus, error) {
	hj, err := h.c.WaitJob(ctx, id)
	return hj.Status, err
}

func (h hostTarget) follow(ctx context.Context, id string) error { return followRun(ctx, h.c, id) }

func clampSize(n int) uint16 {
	return uint16(max(0, min(n, 65535)))
}
