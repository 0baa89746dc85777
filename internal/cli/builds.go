package cli

import (
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/client"
)

// buildsCommands are `pier builds`, `builds info ID` and `builds output
// ID` (also builds:output, as Heroku's builds:output).
func buildsCommands() []*cobra.Command {
	builds := listing[api.Build]{
		Use: "builds", Short: "List the app's builds, newest first",
		Header: []string{"ID", "STATE", "SOURCE", "BUILDPACKS", "RELEASE", "CREATED", "ERROR"},
		Row: func(b api.Build) []string {
			return []string{b.ID, string(b.State), orDash(shortSource(b.Source)),
				orDash(strings.Join(b.Buildpacks, ",")), orDash(b.Release), ago(b.CreatedAt), orDash(firstLineOf(b.Error))}
		},
	}.appCommand((*client.Controller).Builds)

	output := func(use string) *cobra.Command {
		return appAction(&cobra.Command{
			Use:   use + " [ID]",
			Short: "Print a finished build's output (default: the latest build)",
			Args:  cobra.MaximumNArgs(1),
		}, func(cmd *cobra.Command, c *client.Controller, app string, args []string) error {
			id := "latest"
			if len(args) == 1 {
				id = args[0]
			}
			return c.BuildOutput(cmd.Context(), app, id, os.Stdout)
		})
	}
	info := appAction(&cobra.Command{
		Use:   "info [ID]",
		Short: "Show a build (default: the latest) as JSON",
		Args:  cobra.MaximumNArgs(1),
	}, func(cmd *cobra.Command, c *client.Controller, app string, args []string) error {
		id := "latest"
		if len(args) == 1 {
			id = args[0]
		}
		b, err := c.BuildInfo(cmd.Context(), app, id)
		return orJSON(b, err)
	})
	builds.AddCommand(output("output"), info)
	alias := output("builds:output")
	alias.Hidden = true
	return []*cobra.Command{builds, alias}
}

// shortSource abbreviates a commit id.
func shortSource(s string) string {
	if len(s) == 40 {
		return s[:8]
	}
	return s
}

func firstLineOf(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// printBuildEvent shows a build's progress as it comes.
func printBuildEvent(ev api.BuildEvent) {
	if ev.Output != "" {
		os.Stderr.WriteString(ev.Output)
	}
}
