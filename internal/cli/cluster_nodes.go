package cli

import (
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/client"
)

// newHostsCmd is `pier hosts`: the live hosts and how full they are,
// with drain and undrain.
func newHostsCmd() *cobra.Command {
	cmd := listing[api.HostInfo]{
		Use: "hosts", Short: "List the cluster's live hosts, with what their jobs reserve of them",
		Header: []string{"ID", "ADDR", "JOBS", "CPU", "MEMORY", "RUNTIME", "VERSION", "UP", "STATE"},
		Row: func(h api.HostInfo) []string {
			return []string{h.ID, h.Addr, strconv.Itoa(h.Jobs),
				fmt.Sprintf("%d/%dm", h.ReservedCPUMillis, h.CPUMillis),
				fmt.Sprintf("%d/%dM", h.ReservedMemoryMB, h.MemoryMB),
				orDash(h.Runtime), orDash(h.Version), ago(h.StartedAt), drainState(h)}
		},
		Empty: "No live host: start one with `pier host --join SERVER:7300 --token TOKEN`.",
	}.command((*client.Controller).Hosts)
	cmd.AddCommand(newHostDrainCmd(), newHostUndrainCmd())
	return cmd
}

// newHostDrainCmd is `pier hosts drain HOST`: empty a host for
// maintenance, and wait until it is.
func newHostDrainCmd() *cobra.Command {
	var noWait bool
	cmd := clientAction(&cobra.Command{
		Use:   "drain HOST",
		Short: "Empty a host for maintenance: nothing new goes there, its service jobs move elsewhere",
		Long: `Drain a host: schedulers place nothing new on it, and move its service jobs
to other hosts, each stopped once its replacement runs (never below the
scale asked for). pier waits until no job is left on the host (one-off jobs
run to their end) unless --no-wait; interrupting the wait does not stop the
drain. pier hosts undrain HOST makes the host usable again.`,
		Args: cobra.ExactArgs(1),
	}, func(cmd *cobra.Command, c *client.Controller, args []string) error {
		id, ctx := args[0], cmd.Context()
		if err := c.DrainHost(ctx, id); err != nil {
			return err
		}
		fmt.Printf("Draining %s\n", id)
		if noWait {
			return nil
		}
		last := -1
		for {
			hosts, err := c.Hosts(ctx)
			if err != nil {
				return err
			}
			left := 0
			for _, h := range hosts {
				if h.ID == id {
					left = h.Jobs
				}
			}
			if left == 0 {
				fmt.Printf("%s is empty\n", id)
				return nil
			}
			if left != last {
				fmt.Printf("%s left on %s\n", plural(left, "job", "jobs"), id)
				last = left
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Second):
			}
		}
	})
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "return once the drain has started")
	return cmd
}

func newHostUndrainCmd() *cobra.Command {
	return clientAction(&cobra.Command{
		Use:   "undrain HOST",
		Short: "End a host's drain: it takes jobs again",
		Args:  cobra.ExactArgs(1),
	}, func(cmd *cobra.Command, c *client.Controller, args []string) error {
		if err := c.UndrainHost(cmd.Context(), args[0]); err != nil {
			return err
		}
		fmt.Printf("%s takes jobs again\n", args[0])
		return nil
	})
}

// newServersCmd is `pier servers`: every server answers the whole API.
func newServersCmd() *cobra.Command {
	return listing[api.Server]{
		Use: "servers", Short: "List the cluster's servers (each answers the whole API)",
		Header: []string{"NAME", "URL"},
		Row:    func(s api.Server) []string { return []string{s.Name, s.URL} },
	}.command((*client.Controller).Servers)
}

func drainState(h api.HostInfo) string {
	if h.Draining {
		return "draining"
	}
	return "ready"
}
