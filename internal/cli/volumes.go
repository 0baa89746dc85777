package cli

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/client"
)

// volumesCommands are `pier volumes` and `pier volumes:remove`.
func volumesCommands() []*cobra.Command {
	return []*cobra.Command{newVolumesCmd(), newVolumesRemoveCmd()}
}

func newVolumesCmd() *cobra.Command {
	var app string
	cmd := listing[api.VolumeInfo]{
		Use: "volumes", Short: "List volumes: where each lives, its size cap, state and users",
		Long: `List the cluster's volumes (with -a, one app's). A process type that
declares a volume gets one per (app, process type, name), made on the
host where its first job is placed and kept there: its jobs always run
on that host, and wait if it is gone. A volume is removed only with
pier volumes:remove.`,
		Header: []string{"ID", "APP", "TYPE", "NAME", "HOST", "SIZE", "STATE", "JOBS"},
		Row: func(v api.VolumeInfo) []string {
			host := v.Host
			if host == "" {
				host = "-"
			}
			return []string{v.ID, v.App, v.ProcessType, v.Name, host, strconv.FormatInt(v.SizeMB, 10) + " MB",
				v.State, strings.Join(v.Jobs, ",")}
		},
	}.command(func(c *client.Controller, ctx context.Context) ([]api.VolumeInfo, error) { return c.Volumes(ctx, app) })
	cmd.Flags().StringVarP(&app, "app", "a", "", "only this app's volumes")
	return cmd
}

func newVolumesRemoveCmd() *cobra.Command {
	var confirm string
	cmd := clientAction(&cobra.Command{
		Use:   "volumes:remove ID --confirm ID",
		Short: "Remove a volume and the data on it (its jobs must be scaled to 0)",
		Args:  cobra.ExactArgs(1),
	}, func(cmd *cobra.Command, c *client.Controller, args []string) error {
		id := args[0]
		if confirm != id {
			return fmt.Errorf("this deletes volume %s and its data for good; to proceed, run again with --confirm %s", id, id)
		}
		v, err := c.RemoveVolume(cmd.Context(), id)
		if err != nil {
			return err
		}
		if v.State == string(api.VolumeRemoving) {
			fmt.Printf("Removing volume %s (%s of %s) from host %s\n", id, v.Name, v.App, v.Host)
			return nil
		}
		fmt.Printf("Removed volume %s (%s of %s)\n", id, v.Name, v.App)
		return nil
	})
	cmd.Flags().StringVar(&confirm, "confirm", "", "the volume's id, to confirm")
	return cmd
}
