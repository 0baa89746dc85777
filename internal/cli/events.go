package cli

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/internal/cliconfig"
)

func newEventsCmd() *cobra.Command {
	var app string
	var asJSON bool
	var since string
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Follow app, release, scale, job and deployment events as they happen",
		Long: `Follow the cluster's events: apps, releases, scaling, jobs and deployments.
With -a (or PIER_APP, or a git remote named pier) only that app's. The
stream reconnects by itself and resumes where it left off; --since ID
resumes from an event id printed earlier.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if app == "" {
				wd, _ := os.Getwd()
				if a, err := cliconfig.ResolveApp("", os.Getenv, wd); err == nil {
					app = a
				}
			}
			c, err := controllerClient()
			if err != nil {
				return err
			}
			defer c.Close()
			ctx := cmd.Context()
			last := since
			for {
				last, err = c.Events(ctx, app, last, func(e api.Event) error {
					if asJSON {
						return printJSON(os.Stdout, e)
					}
					fmt.Printf("%s  %-10s %-6s %-12s %s\n", e.Time.Local().Format("15:04:05.000"), e.Type, e.Op, e.App, describeEvent(e))
					return nil
				})
				if ctx.Err() != nil {
					return nil
				}
				var ae *api.Error
				if errors.As(err, &ae) && ae.Status < 500 {
					return err
				}
				// The server went away or the stream ended: resume.
				time.Sleep(time.Second)
			}
		},
	}
	cmd.Flags().StringVarP(&app, "app", "a", "", "only this app's events")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print each event as JSON")
	cmd.Flags().StringVar(&since, "since", "", "resume after this event id")
	return cmd
}

// describeEvent is an event's one-line summary.
func describeEvent(e api.Event) string {
	obj, ok := e.Object.(map[string]any)
	if !ok {
		return ""
	}
	switch e.Type {
	case "release":
		return fmt.Sprintf("v%v", obj["version"])
	case "scale":
		return fmt.Sprintf("%v %v", obj["release"], obj["processes"])
	case "deployment":
		s := fmt.Sprintf("v%v %v", obj["version"], obj["state"])
		if r, ok := obj["reason"].(string); ok && r != "" {
			s += ": " + r
		}
		return s
	case "job":
		s := fmt.Sprintf("%v %v", obj["id"], obj["state"])
		if r, ok := obj["error"].(string); ok && r != "" {
			s += ": " + r
		}
		return s
	}
	return ""
}
