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
	var ac appCommand
	var asJSON, shell bool
	cmd := &cobra.Command{
		Use:   name,
		Short: "Show an app's config vars (set and unset them with the subcommands)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			app, c, err := ac.resolve()
			if err != nil {
				return err
			}
			defer c.Close()
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
		},
	}
	ac.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().BoolVarP(&shell, "shell", "s", false, "print KEY=VALUE lines a shell can read")
	cmd.AddCommand(newEnvSetCmd("set"), newEnvUnsetCmd("unset"))
	return cmd
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func newEnvSetCmd(use string) *cobra.Command {
	var ac appCommand
	var noWait bool
	cmd := &cobra.Command{
		Use:   use + " KEY=VALUE...",
		Short: "Set config vars: a new release, deployed at once",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			changes := map[string]*string{}
			for _, a := range args {
				k, v, ok := strings.Cut(a, "=")
				if !ok || k == "" {
					return fmt.Errorf("%q: want KEY=VALUE", a)
				}
				changes[k] = &v
			}
			return changeEnv(cmd.Context(), &ac, changes, noWait)
		},
	}
	ac.register(cmd)
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "return once the release is made, without waiting for its deployment")
	return cmd
}

func newEnvUnsetCmd(use string) *cobra.Command {
	var ac appCommand
	var noWait bool
	cmd := &cobra.Command{
		Use:   use + " KEY...",
		Short: "Remove config vars: a new release, deployed at once",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			changes := map[string]*string{}
			for _, k := range args {
				if strings.Contains(k, "=") {
					return fmt.Errorf("%q: unset takes names, not KEY=VALUE", k)
				}
				changes[k] = nil
			}
			return changeEnv(cmd.Context(), &ac, changes, noWait)
		},
	}
	ac.register(cmd)
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "return once the release is made, without waiting for its deployment")
	return cmd
}

func changeEnv(ctx context.Context, ac *appCommand, changes map[string]*string, noWait bool) error {
	app, c, err := ac.resolve()
	if err != nil {
		return err
	}
	defer c.Close()
	res, err := c.SetEnv(ctx, app, changes)
	if err != nil {
		return err
	}
	fmt.Printf("Config changed for %s: %s\n", app, strings.Join(sortedKeys(changes), ", "))
	return announceRelease(ctx, c, res, noWait)
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
