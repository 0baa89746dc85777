package cli

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/client"
	"github.com/pierpaas/pier/internal/cliconfig"
)

// herokuCommands are the verbs Heroku users type that have no command of
// their own elsewhere: restart, open, config:get, apps:rename,
// releases:info and maintenance.
func herokuCommands() []*cobra.Command {
	getEnv := newConfigGetCmd("env:get")
	getEnv.Hidden = true
	return []*cobra.Command{newRestartCmd(), newOpenCmd(), newConfigGetCmd("config:get"), getEnv,
		newRenameCmd(), newReleaseInfoCmd(), newMaintenanceCmd(),
		newMaintenanceSetCmd("maintenance:on", true), newMaintenanceSetCmd("maintenance:off", false)}
}

// herokuAliases gives existing commands their Heroku spellings
// (apps:create for create...), hidden from the help's list as cobra
// shows aliases only in a command's own help.
var herokuAliases = map[string][]string{
	"create":  {"apps:create"},
	"destroy": {"apps:destroy"},
	"info":    {"apps:info"},
	"scale":   {"ps:scale"},
	"kill":    {"ps:kill", "ps:stop"},
	"restart": {"ps:restart"},
	"rename":  {"apps:rename"},
}

// addHerokuAliases adds herokuAliases to root's commands.
func addHerokuAliases(root *cobra.Command) {
	for _, c := range root.Commands() {
		c.Aliases = append(c.Aliases, herokuAliases[c.Name()]...)
	}
}

func newRestartCmd() *cobra.Command {
	var noWait bool
	var timeout time.Duration
	cmd := appAction(&cobra.Command{
		Use:   "restart [TYPE|JOB]",
		Short: "Restart an app's jobs one at a time, without failing a request",
		Long: `Replace every job of the app's current release (or of one process type,
or one job) by a new one, one job at a time: the new job runs, and passes
its health check, before the old one stops. Nothing fails in between, as
long as the cluster has room for one more job; if it has none, pier ps
says why the new job waits, and the old one keeps running.

pier waits until every job is replaced (at most --timeout); with --no-wait
it returns at once and the restart goes on.`,
		Args: cobra.MaximumNArgs(1),
	}, func(cmd *cobra.Command, c *client.Controller, app string, args []string) error {
		ctx := cmd.Context()
		req := api.RestartRequest{}
		if len(args) == 1 {
			// A job's id is "<app>-<type>-<random>"; a process type is a
			// plain word. Heroku's "web.1" names a type's job: pier's jobs
			// have ids instead, so web.N restarts the type.
			arg, _, _ := strings.Cut(args[0], ".")
			if strings.HasPrefix(args[0], app+"-") {
				req.Job = args[0]
			} else {
				req.ProcessType = arg
			}
		}
		res, err := c.Restart(ctx, app, req)
		if err != nil {
			return err
		}
		what := "every job"
		switch {
		case req.Job != "":
			what = "job " + req.Job
		case req.ProcessType != "":
			what = "the " + req.ProcessType + " jobs"
		}
		fmt.Printf("Restarting %s of %s (%s), one at a time\n", what, app, plural(len(res.Jobs), "job", "jobs"))
		if noWait {
			return nil
		}
		return waitRestart(cmd, c, app, res.Jobs, timeout)
	})
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "return at once; the restart goes on")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "how long to wait for the restart")
	return cmd
}

// waitRestart waits until none of the jobs runs any more, saying on
// stderr as each is replaced.
func waitRestart(cmd *cobra.Command, c *client.Controller, app string, ids []string, timeout time.Duration) error {
	ctx := cmd.Context()
	deadline := time.Now().Add(timeout)
	left := map[string]bool{}
	for _, id := range ids {
		left[id] = true
	}
	for {
		jl, err := c.Jobs(ctx, app)
		if err != nil {
			return err
		}
		still := map[string]bool{}
		for _, j := range jl.Jobs {
			if left[j.ID] && j.Desired == api.DesiredRunning && !j.State.Terminal() {
				still[j.ID] = true
			}
		}
		for id := range left {
			if !still[id] {
				progress("-----> replaced %s", id)
			}
		}
		left = still
		if len(left) == 0 {
			fmt.Printf("Restarted %s\n", app)
			return nil
		}
		if time.Now().After(deadline) {
			why := ""
			for _, p := range jl.Pending {
				why += fmt.Sprintf("; %s waits: %s", p.ProcessType, p.Reason)
			}
			return fmt.Errorf("the restart of %s has not finished after %s: %s still to replace%s (see pier ps)",
				app, timeout, plural(len(left), "job", "jobs"), why)
		}
		select {
		case <-ctx.Done():
			return errors.New("stopped waiting; the restart goes on (see pier ps)")
		case <-time.After(300 * time.Millisecond):
		}
	}
}

func newOpenCmd() *cobra.Command {
	return appAction(&cobra.Command{
		Use:   "open [PATH]",
		Short: "Print the app's URL, and open it in a browser when there is a display",
		Args:  cobra.MaximumNArgs(1),
	}, func(cmd *cobra.Command, c *client.Controller, app string, args []string) error {
		a, err := c.App(cmd.Context(), app)
		if err != nil {
			return err
		}
		if a.URL == "" {
			return fmt.Errorf("%s has no web process running: nothing to open (deploy one, or pier scale web=1)", app)
		}
		u := strings.TrimSuffix(a.URL, "/")
		if len(args) == 1 {
			u += "/" + strings.TrimPrefix(args[0], "/")
		}
		fmt.Println(u)
		openBrowser(u)
		return nil
	})
}

// openBrowser opens u with xdg-open when there is a display to open it
// on; without one (a server, CI, ssh) printing the URL is all there is
// to do, and that is no failure.
func openBrowser(u string) {
	if os.Getenv("DISPLAY") == "" && os.Getenv("WAYLAND_DISPLAY") == "" {
		return
	}
	path, err := exec.LookPath("xdg-open")
	if err != nil {
		return
	}
	cmd := exec.Command(path, u)
	if err := cmd.Start(); err != nil {
		progress("pier: could not open a browser: %v", err)
		return
	}
	go cmd.Wait()
}

func newConfigGetCmd(use string) *cobra.Command {
	var shell bool
	cmd := appAction(&cobra.Command{
		Use:   use + " KEY",
		Short: "Print one config var's value",
		Args:  cobra.ExactArgs(1),
	}, func(cmd *cobra.Command, c *client.Controller, app string, args []string) error {
		env, err := c.Env(cmd.Context(), app)
		if err != nil {
			return err
		}
		v, ok := env[args[0]]
		if !ok {
			return fmt.Errorf("%s has no config var %s", app, args[0])
		}
		if shell {
			fmt.Printf("%s=%s\n", args[0], shellQuote(v))
		} else {
			fmt.Println(v)
		}
		return nil
	})
	cmd.Flags().BoolVarP(&shell, "shell", "s", false, "print KEY=VALUE a shell can read")
	return cmd
}

func newRenameCmd() *cobra.Command {
	var ac appCommand
	cmd := &cobra.Command{
		Use:   "rename [OLD] NEW",
		Short: "Rename an app (its releases, routes and history go with it; its jobs restart)",
		Long: `Rename an app: pier apps:rename OLD NEW, or pier apps:rename NEW -a OLD as
on Heroku. Its releases, config, formation, routes, drains, builds and
deployments move to the new name at once, in one transaction; its jobs
are replaced by jobs under the new name (a restart), and its domain
becomes NEW's. A git remote named pier that pointed at OLD in this
checkout is pointed at NEW.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			newName := args[len(args)-1]
			if len(args) == 2 {
				if ac.app != "" && ac.app != args[0] {
					return fmt.Errorf("-a %s and %s disagree", ac.app, args[0])
				}
				ac.app = args[0]
			}
			old, c, err := ac.resolve()
			if err != nil {
				return err
			}
			defer c.Close()
			app, err := c.RenameApp(cmd.Context(), old, newName)
			if err != nil {
				return err
			}
			fmt.Printf("Renamed %s to %s\n", old, app.Name)
			if app.URL != "" {
				fmt.Printf("%s will answer at %s once its jobs have restarted\n", app.Name, app.URL)
			}
			if err := renameGitRemote(".", old, app.Name); err != nil {
				progress("pier: the git remote %s still points at %s: %v", cliconfig.GitRemote, old, err)
			}
			return nil
		},
	}
	ac.register(cmd)
	return cmd
}

// renameGitRemote points dir's pier remote at app to instead of from, if
// it pointed at from.
func renameGitRemote(dir, from, to string) error {
	if !inGitCheckout(dir) {
		return nil
	}
	if a, err := cliconfig.AppFromGit(dir); err != nil || a != from {
		return nil
	}
	out, err := exec.Command("git", "-C", dir, "remote", "get-url", cliconfig.GitRemote).Output()
	if err != nil {
		return err
	}
	url := strings.TrimSpace(string(out))
	var next string
	for _, suffix := range []string{"/" + from + ".git", "/" + from, ":" + from + ".git", ":" + from} {
		if strings.HasSuffix(url, suffix) {
			next = strings.TrimSuffix(url, suffix) + strings.Replace(suffix, from, to, 1)
			break
		}
	}
	if next == "" {
		return fmt.Errorf("cannot tell the app in %s", url)
	}
	if err := exec.Command("git", "-C", dir, "remote", "set-url", cliconfig.GitRemote, next).Run(); err != nil {
		return err
	}
	fmt.Printf("Git remote %s: %s\n", cliconfig.GitRemote, next)
	return nil
}

func newReleaseInfoCmd() *cobra.Command {
	var asJSON bool
	cmd := appAction(&cobra.Command{
		Use:   "releases:info [vN]",
		Short: "Show a release: its code, process types and config vars (default: the current one)",
		Args:  cobra.MaximumNArgs(1),
	}, func(cmd *cobra.Command, c *client.Controller, app string, args []string) error {
		ctx := cmd.Context()
		a, err := c.App(ctx, app)
		if err != nil {
			return err
		}
		id := a.Release
		if len(args) == 1 {
			if _, err := client.ParseVersion(args[0]); err != nil {
				return err
			}
			id = args[0]
		}
		if id == "" {
			return fmt.Errorf("%s has no release yet", app)
		}
		rel, err := c.Release(ctx, app, id)
		if err != nil {
			return err
		}
		if asJSON {
			return printJSON(os.Stdout, rel)
		}
		status := ""
		if rel.ID == a.Release {
			status = " (current)"
		}
		fmt.Printf("=== %s v%d%s\n", app, rel.Version, status)
		fmt.Printf("Created:    %s\n", rel.CreatedAt.Local().Format(time.RFC1123))
		if rel.Artifact != nil {
			fmt.Printf("Artifact:   %s %s (%d bytes)\n", rel.Artifact.Type, rel.Artifact.SHA256, rel.Artifact.Size)
		}
		fmt.Println("Processes:")
		for _, name := range sortedKeys(rel.Processes) {
			fmt.Printf("  %s: %s\n", name, strings.Join(rel.Processes[name].Args, " "))
			for _, l := range processDetails(rel.Processes[name]) {
				fmt.Printf("    %s\n", l)
			}
		}
		fmt.Println("Config vars:")
		for _, k := range sortedKeys(rel.Env) {
			fmt.Printf("  %s: %s\n", k, rel.Env[k])
		}
		return nil
	})
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newMaintenanceCmd() *cobra.Command {
	return appAction(&cobra.Command{
		Use:   "maintenance",
		Short: "Show whether the app is in maintenance mode (maintenance:on, maintenance:off switch it)",
		Args:  cobra.NoArgs,
	}, func(cmd *cobra.Command, c *client.Controller, app string, _ []string) error {
		a, err := c.App(cmd.Context(), app)
		if err != nil {
			return err
		}
		fmt.Println(onOff(a.Maintenance))
		return nil
	})
}

func newMaintenanceSetCmd(use string, on bool) *cobra.Command {
	short := "Put the app in maintenance mode: the routers answer its domains with 503 and a page; its jobs keep running"
	if !on {
		short = "Take the app out of maintenance mode: its domains serve again"
	}
	return appAction(&cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.NoArgs,
	}, func(cmd *cobra.Command, c *client.Controller, app string, _ []string) error {
		if _, err := c.SetMaintenance(cmd.Context(), app, on); err != nil {
			return err
		}
		fmt.Printf("Maintenance mode %s for %s\n", onOff(on), app)
		return nil
	})
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}
