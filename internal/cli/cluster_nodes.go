package cli

import (
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/client"
)

// newHostsCmd is `pier hosts`: the live hosts and how full they are.
func newHostsCmd() *cobra.Command {
	return listing[api.HostInfo]{
		Use: "hosts", Short: "List the cluster's live hosts, with what their jobs reserve of them",
		Header: []string{"ID", "ADDR", "JOBS", "CPU", "MEMORY", "RUNTIME", "VERSION", "UP"},
		Row: func(h api.HostInfo) []string {
			return []string{h.ID, h.Addr, strconv.Itoa(h.Jobs),
				fmt.Sprintf("%d/%dm", h.ReservedCPUMillis, h.CPUMillis),
				fmt.Sprintf("%d/%dM", h.ReservedMemoryMB, h.MemoryMB),
				orDash(h.Runtime), orDash(h.Version), ago(h.StartedAt)}
		},
		Empty: "No live host: start one with `pier host --join SERVER:7300 --token TOKEN`.",
	}.command((*client.Controller).Hosts)
}

// newServersCmd is `pier servers`: every server answers the whole API.
func newServersCmd() *cobra.Command {
	return listing[api.Server]{
		Use: "servers", Short: "List the cluster's servers (each answers the whole API)",
		Header: []string{"NAME", "URL"},
		Row:    func(s api.Server) []string { return []string{s.Name, s.URL} },
	}.command((*client.Controller).Servers)
}
