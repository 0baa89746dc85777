package cli

import (
	"errors"
	"fmt"
	"os"
	"regexp"
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
stream reconnects by itself and resumes where it left off. Each line
starts with the event's id; --since takes one (resuming after it), or a
time: 2026-01-02T15:04:05Z, 15:04 (today), or 10m (ago). The cluster
keeps about an hour of events to replay.`,
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
			last, from, err := parseSince(since, time.Now())
			if err != nil {
				return err
			}
			for {
				show := func(e api.Event) error {
					if asJSON {
						return printJSON(os.Stdout, e)
					}
					fmt.Printf("%-10s %s  %-10s %-6s %-12s %s\n", e.ID, e.Time.Local().Format("15:04:05.000"), e.Type, e.Op, e.App, describeEvent(e))
					return nil
				}
				if !from.IsZero() && last == "" {
					last, err = c.EventsSince(ctx, app, from, show)
				} else {
					last, err = c.Events(ctx, app, last, show)
				}
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
	cmd.Flags().StringVar(&since, "since", "", "start after this event id, or at this time (RFC 3339, 15:04, or 10m ago)")
	return cmd
}

// eventIDRE is an event id as pier events prints it: "<revision>-<index>".
var eventIDRE = regexp.MustCompile(`^[1-9][0-9]*-[0-9]+$`)

// parseSince reads --since: an event id, or a time (RFC 3339, a clock
// time today, or a duration ago).
func parseSince(s string, now time.Time) (id string, at time.Time, err error) {
	switch {
	case s == "":
		return "", time.Time{}, nil
	case eventIDRE.MatchString(s):
		return s, time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return "", t, nil
	}
	for _, layout := range []string{"15:04", "15:04:05"} {
		if t, err := time.ParseInLocation(layout, s, now.Location()); err == nil {
			y, m, d := now.Date()
			return "", time.Date(y, m, d, t.Hour(), t.Minute(), t.Second(), 0, now.Location()), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return "", now.Add(-d), nil
	}
	return "", time.Time{}, fmt.Errorf("--since %q: want an event id as pier events prints it (like 1234-0), or a time: 2026-01-02T15:04:05Z, 15:04, or 10m for ten minutes ago", s)
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
