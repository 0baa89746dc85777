package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/client"
)

// newStatusCmd is `pier status`: is the cluster healthy, and if not,
// which part and why. It exits 1 when it is not, for monitoring.
func newStatusCmd() *cobra.Command {
	var asJSON bool
	cmd := clientAction(&cobra.Command{
		Use:   "status",
		Short: "Say whether the cluster is healthy and, when not, which part and why (exit 1)",
		Args:  cobra.NoArgs,
	}, func(cmd *cobra.Command, c *client.Controller, _ []string) error {
		st, err := c.Status(cmd.Context())
		if err != nil {
			return err
		}
		if asJSON {
			enc := json.NewEncoder(os.Stdout)
			enc.SetIndent("", "  ")
			if err := enc.Encode(st); err != nil {
				return err
			}
		} else {
			printStatus(st)
		}
		if !st.Healthy {
			return exitError{1}
		}
		return nil
	})
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func printStatus(st api.ClusterStatus) {
	if st.Healthy {
		fmt.Println("The cluster is healthy.")
	} else {
		fmt.Println("The cluster is NOT healthy:")
		for _, p := range st.Problems {
			fmt.Printf("  ! %s\n", p)
		}
	}
	fmt.Printf("\nStore: leader %s\n", orDash(st.Store.Leader))
	for _, m := range st.Store.Members {
		if !m.Reachable {
			fmt.Printf("  %-20s not answering: %s\n", m.Name, m.Error)
			continue
		}
		fmt.Printf("  %-20s database %d MiB (%d MiB in use) of %d MiB\n", m.Name, m.DBBytes>>20, m.DBInUse>>20, m.QuotaBytes>>20)
	}
	fmt.Printf("Leaders: scheduler %s, deployer %s, log aggregator %s\n",
		orDash(st.Leaders["scheduler"]), orDash(st.Leaders["deployer"]), orDash(st.Leaders["logs"]))
	fmt.Println("\nServers:")
	for _, s := range st.Servers {
		if !s.Reachable {
			fmt.Printf("  %-20s not answering: %s\n", s.Name, s.Error)
			continue
		}
		state := "ok"
		if s.Disk.Pressure != "" {
			state = "LOW ON SPACE"
		}
		repl := "blobs replicated"
		if s.PendingBlobs > 0 {
			repl = fmt.Sprintf("%d blobs to copy, %s behind", s.PendingBlobs, time.Duration(s.ReplicationLag))
		}
		fmt.Printf("  %-20s disk %s: %d MiB free of %d MiB, %s; %s; %d kept artifacts missing\n", s.Name, s.Disk.Dir, s.Disk.FreeBytes>>20, s.Disk.TotalBytes>>20, state, repl, s.MissingBlobs)
	}
	fmt.Println("\nHosts:")
	if len(st.Hosts) == 0 {
		fmt.Println("  none live")
	}
	for _, h := range st.Hosts {
		state := "ok"
		switch {
		case h.DiskPressure != "":
			state = "low on disk space: takes no new jobs"
		case h.Drained:
			state = "drained"
		}
		lease := "-"
		if h.LeaseTTL > 0 {
			lease = fmt.Sprintf("renewed %s ago of %s", time.Duration(h.LeaseAge), time.Duration(h.LeaseTTL))
		}
		detail := "agent not answering: " + h.Error
		if h.Reachable {
			disk := "disk ?"
			if h.Disk != nil {
				disk = fmt.Sprintf("disk %d MiB free of %d MiB", h.Disk.FreeBytes>>20, h.Disk.TotalBytes>>20)
			}
			detail = fmt.Sprintf("%s; memory %d MiB available of %d MiB (jobs reserve %d of %d MiB); %d jobs",
				disk, h.MemAvailableMB, h.MemTotalMB, h.ReservedMemoryMB, h.MemoryMB, h.Jobs)
		}
		fmt.Printf("  %-20s %s; lease %s; %s\n", h.ID, state, lease, detail)
	}
	if len(st.Routers) > 0 {
		fmt.Println("\nRouters:")
	}
	for _, r := range st.Routers {
		state := "ready"
		if !r.Ready {
			state = "NOT READY: " + r.Error
		}
		fmt.Printf("  %-20s %s (%s %s)\n", r.Name, state, r.Kind, orDash(r.Version))
	}
}
