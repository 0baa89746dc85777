package cli

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/client"
)

func newReleasesCmd() *cobra.Command {
	var asJSON bool
	cmd := appAction(&cobra.Command{
		Use:   "releases",
		Short: "List an app's releases, newest first, with how their deployments went",
		Args:  cobra.NoArgs,
	}, func(cmd *cobra.Command, c *client.Controller, app string, _ []string) error {
		ctx := cmd.Context()
		rels, err := c.Releases(ctx, app)
		if err != nil || asJSON {
			return orJSON(rels, err)
		}
		a, err := c.App(ctx, app)
		if err != nil {
			return err
		}
		deps, err := c.Deployments(ctx, app)
		if err != nil {
			return err
		}
		byRelease := map[string]api.Deployment{}
		for _, d := range deps {
			byRelease[d.NewRelease] = d
		}
		rows := [][]string{}
		for _, r := range rels {
			status := ""
			if d, ok := byRelease[r.ID]; ok {
				status = string(d.State)
				if d.Reason != "" {
					status += ": " + shorten(d.Reason, 60)
				}
			}
			if r.ID == a.Release {
				status = "current"
			}
			digest := "-"
			if r.Artifact != nil {
				digest = r.Artifact.SHA256[:12]
				if r.Artifact.Type == api.ArtifactImage {
					// An image is known by its full digest, which is
					// what docker pull and crane take.
					digest = "image sha256:" + r.Artifact.SHA256
				}
			}
			rows = append(rows, []string{fmt.Sprintf("v%d", r.Version), strings.Join(sortedKeys(r.Processes), ","),
				digest, fmt.Sprint(len(r.Env)), ago(r.CreatedAt), status})
		}
		table(os.Stdout, []string{"VERSION", "PROCESSES", "ARTIFACT", "VARS", "CREATED", "STATUS"}, rows)
		return nil
	})
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newRollbackCmd() *cobra.Command {
	var noWait bool
	cmd := appAction(&cobra.Command{
		Use:   "rollback [vN]",
		Short: "Release an older release's code and config again (default: the one before the current)",
		Args:  cobra.MaximumNArgs(1),
	}, func(cmd *cobra.Command, c *client.Controller, app string, args []string) error {
		version := 0
		if len(args) == 1 {
			n, err := client.ParseVersion(args[0])
			if err != nil {
				return err
			}
			version = n
		}
		res, err := c.Rollback(cmd.Context(), app, version)
		if err != nil {
			return err
		}
		fmt.Printf("Rolling back %s to the code and config of %s\n", app, rollbackSource(version))
		return announceRelease(cmd.Context(), c, res, noWait)
	})
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "return once the release is made, without waiting for its deployment")
	return cmd
}

func rollbackSource(v int) string {
	if v == 0 {
		return "the previous release"
	}
	return fmt.Sprintf("v%d", v)
}
