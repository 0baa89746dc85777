package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/client"
)

// newDrainsCmd is `pier drains`, with add and remove.
func newDrainsCmd() *cobra.Command {
	cmd := listing[api.Drain]{
		Use: "drains", Short: "List an app's syslog drains",
		Long: `List the syslog drains of an app: destinations that receive every line of
its log, as RFC 5424 messages over TCP (syslog://HOST:PORT) or TLS
(syslog+tls://HOST:PORT), with octet-counted framing.`,
		Header: []string{"ID", "URL", "CREATED"},
		Row: func(d api.Drain) []string {
			return []string{d.ID, d.URL, d.CreatedAt.Local().Format("2006-01-02 15:04")}
		},
		Empty: "%s has no drains",
	}.appCommand((*client.Controller).Drains)
	cmd.AddCommand(newDrainsAddCmd("add"), newDrainsRemoveCmd("remove"))
	return cmd
}

// drainsColonAliases are Heroku's spellings, `pier drains:add URL` and
// `pier drains:remove ID`, hidden, for the root command.
func drainsColonAliases() []*cobra.Command {
	add, remove := newDrainsAddCmd("drains:add"), newDrainsRemoveCmd("drains:remove")
	add.Hidden, remove.Hidden = true, true
	return []*cobra.Command{add, remove}
}

func newDrainsAddCmd(name string) *cobra.Command {
	return appAction(&cobra.Command{
		Use:   name + " URL",
		Short: "Send the app's log lines to a syslog drain (syslog:// or syslog+tls://HOST:PORT)",
		Args:  cobra.ExactArgs(1),
	}, func(cmd *cobra.Command, c *client.Controller, app string, args []string) error {
		d, err := c.AddDrain(cmd.Context(), app, args[0])
		if err != nil {
			return err
		}
		fmt.Printf("Successfully added drain %s to %s (id %s)\n", d.URL, app, d.ID)
		return nil
	})
}

func newDrainsRemoveCmd(name string) *cobra.Command {
	return appAction(&cobra.Command{
		Use:   name + " ID|URL",
		Short: "Remove a syslog drain",
		Args:  cobra.ExactArgs(1),
	}, func(cmd *cobra.Command, c *client.Controller, app string, args []string) error {
		id := args[0]
		// A URL is matched here: it does not fit in a path segment.
		drains, err := c.Drains(cmd.Context(), app)
		if err != nil {
			return err
		}
		for _, d := range drains {
			if d.URL == id {
				id = d.ID
			}
		}
		if err := c.RemoveDrain(cmd.Context(), app, id); err != nil {
			return err
		}
		fmt.Printf("Successfully removed drain %s from %s\n", args[0], app)
		return nil
	})
}
