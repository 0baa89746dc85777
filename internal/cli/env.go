package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/client"
)

// newEnvCmd is `pier env` with `set` and `unset`; `config` is the same
// command by its Heroku name.
func newEnvCmd(name string) *cobra.Command {
	var asJSON, shell bool
	cmd := appAction(&cobra.Command{
		Use:   name,
		Short: "Show an app's config vars (set and unset them with the subcommands)",
		Args:  cobra.NoArgs,
	}, func(cmd *cobra.Command, c *client.Controller, app string, _ []string) error {
		env, err := c.Env(cmd.Context(), app)
		if err != nil || asJSON {
			return orJSON(env, err)
		}
		for _, k := range sortedKeys(env) {
			if shell {
				fmt.Printf("%s=%s\n", k, shellQuote(env[k]))
			} else {
				fmt.Printf("%s: %s\n", k, env[k])
			}
		}
		return nil
	})
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().BoolVarP(&shell, "shell", "s", false, "print KEY=VALUE lines a shell can read")
	cmd.AddCommand(newEnvSetCmd("set"), newEnvUnsetCmd("unset"))
	return cmd
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func newEnvSetCmd(use string) *cobra.Command {
	return envChangeCmd(&cobra.Command{
		Use:   use + " KEY=VALUE...",
		Short: "Set config vars: a new release, deployed at once",
		Args:  cobra.MinimumNArgs(1),
	}, func(a string) (string, *string, error) {
		k, v, ok := strings.Cut(a, "=")
		if !ok || k == "" {
			return "", nil, fmt.Errorf("%q: want KEY=VALUE", a)
		}
		return k, &v, nil
	})
}

func newEnvUnsetCmd(use string) *cobra.Command {
	return envChangeCmd(&cobra.Command{
		Use:   use + " KEY...",
		Short: "Remove config vars: a new release, deployed at once",
		Args:  cobra.MinimumNArgs(1),
	}, func(k string) (string, *string, error) {
		if strings.Contains(k, "=") {
			return "", nil, fmt.Errorf("%q: unset takes names, not KEY=VALUE", k)
		}
		return k, nil, nil
	})
}

// envChangeCmd makes a release with the config changes its arguments
// say, each read by change (a nil value removes the var).
func envChangeCmd(cmd *cobra.Command, change func(arg string) (string, *string, error)) *cobra.Command {
	var noWait bool
	cmd = appAction(cmd, func(cmd *cobra.Command, c *client.Controller, app string, args []string) error {
		changes := map[string]*string{}
		for _, a := range args {
			k, v, err := change(a)
			if err != nil {
				return err
			}
			changes[k] = v
		}
		res, err := c.SetEnv(cmd.Context(), app, changes)
		if err != nil {
			return err
		}
		fmt.Printf("Config changed for %s: %s\n", app, strings.Join(sortedKeys(changes), ", "))
		return announceRelease(cmd.Context(), c, res, noWait)
	})
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "return once the release is made, without waiting for its deployment")
	return cmd
}

// announceRelease says which release was made and waits for its
// deployment unless told not to.
func announceRelease(ctx context.Context, c *client.Controller, res api.ReleaseResult, noWait bool) error {
	fmt.Printf("Release v%d\n", res.Release.Version)
	if noWait {
		return nil
	}
	if err := waitDeployment(ctx, c, res.Deployment); err != nil {
		return err
	}
	if app, err := c.App(ctx, res.Release.App); err == nil && app.URL != "" {
		fmt.Printf("%s is live at %s\n", app.Name, app.URL)
	}
	return nil
}

// colonAliases are Heroku's spellings (`pier config:set`) of subcommands,
// as hidden top-level commands.
func colonAliases() []*cobra.Command {
	var out []*cobra.Command
	for _, parent := range []string{"env", "config"} {
		set, unset := newEnvSetCmd(parent+":set"), newEnvUnsetCmd(parent+":unset")
		set.Hidden, unset.Hidden = true, true
		out = append(out, set, unset)
	}
	return out
}
