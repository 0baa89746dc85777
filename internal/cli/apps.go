package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/client"
	"github.com/pierpaas/pier/internal/cliconfig"
)

func newCreateCmd() *cobra.Command {
	var strategy string
	var batch int
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create an app",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := controllerClient()
			if err != nil {
				return err
			}
			defer c.Close()
			req := api.CreateAppRequest{Name: args[0]}
			if strategy != "" || batch > 0 || timeout > 0 {
				req.Strategy = &api.DeployStrategy{Kind: strategy, BatchSize: batch, Timeout: api.Duration(timeout)}
			}
			app, err := c.CreateApp(cmd.Context(), req)
			if err != nil {
				return err
			}
			fmt.Printf("Created %s\n", app.Name)
			// As heroku create does: inside a git checkout without a pier
			// remote, add one; but not to pier's own source.
			if inGitCheckout(".") && isPierSource(".") {
				fmt.Printf("Not adding a git remote to pier's own source; use pier git-remote to add one anyway\n")
			} else if inGitCheckout(".") {
				if _, err := cliconfig.AppFromGit("."); errors.Is(err, cliconfig.ErrNoGitRemote) {
					cl, err := currentCluster()
					if err == nil {
						cl.URL = c.ServerURL() // the server that answered
						err = configureGitRemote(".", app.Name, cl, nil)
					}
					if err != nil {
						return fmt.Errorf("created %s, but could not add the git remote: %w", app.Name, err)
					}
					fmt.Printf("Git remote %s: %s\n", cliconfig.GitRemote, checkoutRemoteURL(cl, app.Name, nil))
				}
			}
			return nil
		},
	}
	addStrategyFlags(cmd, &strategy, &batch, &timeout)
	return cmd
}

func addStrategyFlags(cmd *cobra.Command, strategy *string, batch *int, timeout *time.Duration) {
	fl := cmd.Flags()
	fl.StringVar(strategy, "strategy", "", "deploy strategy: one-by-one (default), batch, all-at-once")
	fl.IntVar(batch, "batch-size", 0, "new jobs started at a time by the batch strategy")
	fl.DurationVar(timeout, "deploy-timeout", 0, "roll a deployment back when it takes longer (default 5m)")
}

func newAppsCmd() *cobra.Command {
	return listing[api.App]{
		Use: "apps", Short: "List apps",
		Header: []string{"NAME", "RELEASE", "CREATED"},
		Row:    func(a api.App) []string { return []string{a.Name, releaseName(a.Release), ago(a.CreatedAt)} },
	}.command((*client.Controller).Apps)
}

// orJSON prints v as JSON unless err.
func orJSON(v any, err error) error {
	if err != nil {
		return err
	}
	return printJSON(os.Stdout, v)
}

// releaseName shows an app's current release: "v3", or "-" before the
// first deployment.
func releaseName(id string) string {
	if id == "" {
		return "-"
	}
	if i := strings.LastIndex(id, "-v"); i >= 0 {
		return id[i+1:]
	}
	return id
}

func newInfoCmd() *cobra.Command {
	var asJSON bool
	var strategy string
	var batch int
	var timeout time.Duration
	cmd := appAction(&cobra.Command{
		Use:   "info",
		Short: "Show an app, or change its deploy strategy with --strategy",
		Args:  cobra.NoArgs,
	}, func(cmd *cobra.Command, c *client.Controller, name string, _ []string) error {
		ctx := cmd.Context()
		var app api.App
		var err error
		if strategy != "" || batch > 0 || timeout > 0 {
			app, err = c.UpdateApp(ctx, name, api.UpdateAppRequest{Strategy: &api.DeployStrategy{Kind: strategy, BatchSize: batch, Timeout: api.Duration(timeout)}})
		} else {
			app, err = c.App(ctx, name)
		}
		if err != nil {
			return err
		}
		f, err := c.Formation(ctx, name)
		if err != nil {
			return err
		}
		if asJSON {
			return printJSON(os.Stdout, map[string]any{"app": app, "formation": f})
		}
		kind := app.Strategy.Kind
		if kind == "" {
			kind = api.StrategyOneByOne
		}
		if app.Strategy.Kind == api.StrategyBatch {
			kind += fmt.Sprintf(" of %d", app.Strategy.BatchSize)
		}
		fmt.Printf("=== %s\n", app.Name)
		fmt.Printf("Release:    %s\n", releaseName(app.Release))
		if app.URL != "" {
			fmt.Printf("URL:        %s\n", app.URL)
		}
		fmt.Printf("Formation:  %s\n", formatCounts(f.Processes))
		fmt.Printf("Strategy:   %s, timeout %s\n", kind, app.Strategy.DeployTimeout())
		fmt.Printf("Created:    %s\n", app.CreatedAt.Local().Format(time.RFC1123))
		for _, k := range sortedKeys(app.Meta) {
			fmt.Printf("Meta %s: %s\n", k, app.Meta[k])
		}
		return nil
	})
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	addStrategyFlags(cmd, &strategy, &batch, &timeout)
	return cmd
}

func formatCounts(m map[string]int) string {
	if len(m) == 0 {
		return "-"
	}
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}

func newDestroyCmd() *cobra.Command {
	var ac appCommand
	var confirm string
	cmd := &cobra.Command{
		Use:   "destroy [NAME] --confirm NAME",
		Short: "Delete an app with its jobs, releases and routes",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				if ac.app != "" && ac.app != args[0] {
					return fmt.Errorf("-a %s and %s disagree", ac.app, args[0])
				}
				ac.app = args[0]
			}
			name, c, err := ac.resolve()
			if err != nil {
				return err
			}
			defer c.Close()
			if confirm != name {
				return fmt.Errorf("this deletes %s and everything of it; to proceed, run again with --confirm %s", name, name)
			}
			if err := c.DeleteApp(cmd.Context(), name); err != nil {
				return err
			}
			fmt.Printf("Destroyed %s\n", name)
			return nil
		},
	}
	ac.register(cmd)
	cmd.Flags().StringVar(&confirm, "confirm", "", "the app's name, to confirm")
	return cmd
}

// showFailedJob writes on stderr the last lines of the job that failed
// a deployment (a crashed job, the release phase), as a build's output
// does and as Heroku shows a crashed dyno's: the reason is usually
// there. Best effort: a job whose host is gone has none to show.
func showFailedJob(ctx context.Context, c *client.Controller, d api.Deployment) {
	if d.FailedJob == "" {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	lines, err := c.JobOutput(ctx, d.App, d.FailedJob, 20)
	if err != nil || len(lines) == 0 {
		return
	}
	progress(" !     The last lines of job %s:", d.FailedJob)
	for _, l := range lines {
		progress("       %s", l.Text)
	}
}

// waitDeployment follows a deployment to its end, saying on stderr how
// it goes; a failed one is an error with its reason.
func waitDeployment(ctx context.Context, c *client.Controller, d api.Deployment) error {
	last := api.DeployState("")
	for {
		cur, err := c.Deployment(ctx, d.App, d.ID)
		if err != nil {
			return err
		}
		if cur.State != last {
			last = cur.State
			if !cur.State.Done() {
				progress("-----> deploying v%d: %s", cur.Version, cur.State)
			}
		}
		switch cur.State {
		case api.DeployComplete:
			progress("-----> v%d is live", cur.Version)
			return nil
		case api.DeployFailed:
			showFailedJob(ctx, c, cur)
			old := "the previous release keeps running"
			if cur.OldRelease == "" {
				old = "nothing was running before"
			}
			return fmt.Errorf("deploy of v%d failed: %s; %s", cur.Version, cur.Reason, old)
		}
		select {
		case <-ctx.Done():
			return errors.New("stopped waiting; the deployment goes on (see pier releases)")
		case <-time.After(300 * time.Millisecond):
		}
	}
}
