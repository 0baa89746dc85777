package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/client"
)

func newRunCmd() *cobra.Command {
	var (
		env    []string
		memory int64
		detach bool
	)
	cmd := appAction(&cobra.Command{
		Use:   "run [flags] -- CMD [ARG...]",
		Short: "Run a one-off command with the app's current release",
		Long: `Run a one-off command as a job on the cluster, with the app's current
release (its code and config). pier attaches to it: the command reads
pier's stdin and its output comes back as it is written; when stdin and
stdout are terminals it gets a terminal of its own. pier exits with the
command's exit code. With --detach pier prints the job's id and returns.`,
		Args: cobra.MinimumNArgs(1),
	}, func(cmd *cobra.Command, c *client.Controller, app string, args []string) error {
		req := api.RunRequest{Args: args, Resources: api.Resources{MemoryMB: memory}}
		for _, e := range env {
			k, v, ok := strings.Cut(e, "=")
			if !ok || k == "" {
				return fmt.Errorf("-e %q: want KEY=VALUE", e)
			}
			if req.Env == nil {
				req.Env = map[string]string{}
			}
			req.Env[k] = v
		}
		ctx := cmd.Context()
		if detach {
			job, err := c.Run(ctx, app, req)
			if err != nil {
				return err
			}
			fmt.Println(job.ID)
			return nil
		}
		tty := term.IsTerminal(int(os.Stdin.Fd())) && term.IsTerminal(int(os.Stdout.Fd()))
		return runAttached(ctx, &controllerTarget{c: c, app: app, req: req}, tty)
	})
	fl := cmd.Flags()
	fl.SetInterspersed(false) // flags after CMD are the command's
	fl.StringArrayVarP(&env, "env", "e", nil, "environment variable KEY=VALUE (repeatable)")
	fl.Int64Var(&memory, "memory", 0, "memory in MB")
	fl.BoolVarP(&detach, "detach", "d", false, "print the job's id and return at once")
	return cmd
}

// controllerTarget runs a one-off job through the controller.
type controllerTarget struct {
	c   *client.Controller
	app string
	req api.RunRequest
}

func (t *controllerTarget) start(ctx context.Context, tty bool) (string, error) {
	req := t.req
	req.Stdin, req.TTY = true, tty
	job, err := t.c.Run(ctx, t.app, req)
	return job.ID, err
}

func (t *controllerTarget) attach(ctx context.Context, id string, opts client.AttachOptions) (*client.AttachConn, error) {
	return t.c.Attach(ctx, t.app, id, opts)
}

func (t *controllerTarget) stop(ctx context.Context, id string) error {
	return t.c.KillJob(ctx, t.app, id)
}

// wait polls the job until it has ended: a one-off's result is kept for a
// while after, so it cannot be missed.
func (t *controllerTarget) wait(ctx context.Context, id string) (*api.JobStatus, error) {
	for {
		j, err := t.c.Job(ctx, t.app, id)
		var ae *api.Error
		if err != nil && !(errors.As(err, &ae) && ae.Status >= 500) {
			return nil, err
		}
		if err == nil && j.State.Terminal() {
			return &api.JobStatus{ID: j.ID, State: j.State, ExitCode: j.ExitCode, Error: j.Error}, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (t *controllerTarget) follow(ctx context.Context, id string) error {
	st, err := t.wait(ctx, id)
	if err != nil {
		return err
	}
	return jobExit(st, false)
}
