package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/client"
	"github.com/pierpaas/pier/upgrade"
)

// newClusterUpgradeCmd is `pier cluster upgrade BINARY`: a rolling
// upgrade of pier itself, carried out by the cluster (package upgrade);
// the command uploads the binary, records the upgrade and follows it.
func newClusterUpgradeCmd() *cobra.Command {
	var (
		trial, drain   time.Duration
		noWait, asJSON bool
	)
	cmd := clientAction(&cobra.Command{
		Use:   "upgrade BINARY",
		Short: "Replace pier on every node, one at a time, with BINARY; roll back on the first failure",
		Long: `Upgrade pier on every node of the cluster to BINARY (a pier binary for the
nodes' platform), one node at a time: servers one by one (the etcd leader
last), then hosts (their jobs keep running), then routers (each unready for
--drain first, so load balancers stop sending it traffic).

The binary is uploaded to the blobstore once; each node fetches it by its
digest, keeps its current binary beside it as pier.prev, and re-executes
itself with the same PID. A node runs the new binary on probation: the
cluster moves on only once the node has registered again with the new
binary, answers /readyz and is healthy (a server's etcd member votes; a
host agent is registered again). A node that exits, or is not confirmed
within --trial, goes back to its old binary by itself (its supervisor,
systemd with Restart=always, starts it again), and the upgrade stops and
rolls back the nodes already upgraded, newest first.

The upgrade runs in the cluster, not in this command: interrupting the
command does not stop it, and any server carries on if one dies.
pier cluster upgrade-status shows it.`,
		Args: cobra.ExactArgs(1),
	}, func(cmd *cobra.Command, c *client.Controller, args []string) error {
		ctx := cmd.Context()
		f, err := os.Open(args[0])
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		size, err := io.Copy(h, f)
		if err != nil {
			return err
		}
		digest := hex.EncodeToString(h.Sum(nil))
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return err
		}
		version := binaryVersion(ctx, args[0])
		if !asJSON {
			fmt.Printf("Uploading %s (%s, %d MB, sha256 %s)\n", args[0], orDash(version), size>>20, digest[:12])
		}
		if err := c.PutBlob(ctx, digest, size, f); err != nil {
			return fmt.Errorf("upload: %w", err)
		}
		if st, err := c.Status(ctx); err == nil && !st.Healthy && !asJSON {
			fmt.Printf("Note: pier status reports %s\n", strings.Join(st.Problems, "; "))
		}
		u, err := c.StartUpgrade(ctx, api.UpgradeRequest{SHA256: digest, Size: size, Version: version,
			Trial: api.Duration(trial), Drain: api.Duration(drain)})
		if err != nil {
			return err
		}
		if noWait {
			if asJSON {
				return printJSON(os.Stdout, u)
			}
			fmt.Printf("Upgrade %s started: %s\n", u.ID, plural(len(u.Steps), "node", "nodes"))
			return nil
		}
		return followUpgrade(ctx, c, u, asJSON)
	})
	cmd.Flags().DurationVar(&trial, "trial", upgrade.DefaultTrial, "how long a node may take to restart and be healthy with the new binary")
	cmd.Flags().DurationVar(&drain, "drain", upgrade.DefaultDrain, "how long a router is unready before it restarts (for load balancers)")
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "return once the upgrade has started")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the upgrade as JSON when it ends")
	return cmd
}

// newClusterUpgradeStatusCmd is `pier cluster upgrade-status [ID]`.
func newClusterUpgradeStatusCmd() *cobra.Command {
	var asJSON bool
	cmd := clientAction(&cobra.Command{
		Use:   "upgrade-status [ID]",
		Short: "Show the latest (or one) upgrade of pier, node by node",
		Args:  cobra.MaximumNArgs(1),
	}, func(cmd *cobra.Command, c *client.Controller, args []string) error {
		var u api.Upgrade
		if len(args) == 1 {
			var err error
			if u, err = c.Upgrade(cmd.Context(), args[0]); err != nil {
				return err
			}
		} else {
			ups, err := c.Upgrades(cmd.Context())
			if err != nil {
				return err
			}
			if len(ups) == 0 {
				fmt.Println("No upgrade yet.")
				return nil
			}
			u = ups[0]
		}
		if asJSON {
			return printJSON(os.Stdout, u)
		}
		printUpgrade(u)
		return nil
	})
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// followUpgrade prints each step as it changes until the upgrade ends;
// a failed upgrade is an error. The server asked may itself restart: a
// failed poll is tried again (the client fails over to another server).
func followUpgrade(ctx context.Context, c *client.Controller, u api.Upgrade, asJSON bool) error {
	seen := map[string]api.StepState{}
	for {
		if !asJSON {
			for _, s := range u.Steps {
				if seen[s.Node] != s.State {
					seen[s.Node] = s.State
					line := fmt.Sprintf("%-24s %s", s.Node, s.State)
					if s.Error != "" {
						line += ": " + s.Error
					}
					fmt.Println(line)
				}
			}
		}
		if u.State.Done() {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
		if next, err := c.Upgrade(ctx, u.ID); err == nil {
			u = next
		}
	}
	if asJSON {
		if err := printJSON(os.Stdout, u); err != nil {
			return err
		}
	}
	if u.State != api.UpgradeComplete {
		return fmt.Errorf("upgrade %s %s: %s", u.ID, u.State, u.Reason)
	}
	if !asJSON {
		fmt.Printf("Upgrade %s complete: every node runs %s\n", u.ID, orDash(u.Version))
	}
	return nil
}

func printUpgrade(u api.Upgrade) {
	fmt.Printf("Upgrade %s to %s (sha256 %s): %s\n", u.ID, orDash(u.Version), u.SHA256[:min(12, len(u.SHA256))], u.State)
	if u.Reason != "" {
		fmt.Printf("  %s\n", u.Reason)
	}
	rows := [][]string{}
	for _, s := range u.Steps {
		rows = append(rows, []string{s.Node, string(s.State), orDash(s.Error)})
	}
	table(os.Stdout, []string{"NODE", "STEP", "ERROR"}, rows)
}

// binaryVersion asks a binary its version (`BINARY --version`), for
// people; "" when it does not say within a few seconds.
func binaryVersion(ctx context.Context, path string) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--version").Output()
	if err != nil {
		return ""
	}
	f := strings.Fields(string(out))
	if len(f) == 0 {
		return ""
	}
	return f[len(f)-1]
}

// newUpgradeGuardCmd runs the guard of a node on probation (started by
// the node itself; see upgrade.Guard).
func newUpgradeGuardCmd() *cobra.Command {
	return &cobra.Command{
		Use:    upgrade.GuardCommand + " EXE PID",
		Short:  "Put the old binary back if a node's new one is not confirmed (started by the node)",
		Hidden: true,
		Args:   cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			pid, err := strconv.Atoi(args[1])
			if err != nil {
				return err
			}
			ignoreTerminalSignals()
			return upgrade.Guard(context.Background(), args[0], pid, daemonLogger(false))
		},
	}
}
