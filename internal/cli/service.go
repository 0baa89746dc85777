package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

// daemonRoles are the commands a machine runs at boot, and what each is.
var daemonRoles = map[string]string{
	"server": "pier server (etcd member, controller API, schedulers)",
	"host":   "pier host agent",
	"router": "pier router",
	"up":     "pier single-node cluster",
}

// newServiceCmd is `pier service unit ROLE [-- FLAGS...]`: the systemd unit
// that runs a daemon at boot and after a crash, as the power-cut and
// rolling-restart guarantees assume an init system does.
func newServiceCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "service",
		Short: "Run pier's daemons under systemd",
	}
	var binary string
	unit := &cobra.Command{
		Use:   "unit ROLE [-- FLAGS...]",
		Short: "Print a systemd unit that runs a daemon (server, host, router or up) with FLAGS",
		Long: `Print a systemd unit for one of pier's daemons, started at boot and again
after a crash. FLAGS are the daemon's own (see pier ROLE --help) and are
checked first. Install it, for example:

  pier service unit host -- --join 10.0.0.1:7300 --host-ip 10.0.0.5 \
      > /etc/systemd/system/pier-host.service
  systemctl daemon-reload && systemctl enable --now pier-host

A join token is needed on the first start only: put it in
/etc/pier/pier-ROLE.env as PIER_JOIN_TOKEN=... (mode 0600) rather than in
the unit, which any user can read. The units of host and up stop only the
daemon (KillMode=process): jobs outlive their agent, and a restarted one
adopts them.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			role, flags := args[0], args[1:]
			if binary == "" {
				exe, err := os.Executable()
				if err != nil {
					return err
				}
				if binary, err = filepath.EvalSymlinks(exe); err != nil {
					return err
				}
			}
			text, err := systemdUnit(binary, role, flags)
			if err != nil {
				return err
			}
			fmt.Print(text)
			return nil
		},
	}
	unit.Flags().StringVar(&binary, "binary", "", "the pier binary the unit runs (default: this one)")
	cmd.AddCommand(unit)
	return cmd
}

// systemdUnit is the unit that runs `binary role flags...`; the flags
// are parsed by the role's own command first, so a typo fails here and
// not at boot.
func systemdUnit(binary, role string, flags []string) (string, error) {
	what, ok := daemonRoles[role]
	if !ok {
		return "", fmt.Errorf("role %q: want server, host, router or up", role)
	}
	if !filepath.IsAbs(binary) {
		return "", fmt.Errorf("--binary %q: want an absolute path", binary)
	}
	// A command tree of its own, which parsing may change.
	daemon, _, err := newRoot().Find([]string{role})
	if err != nil || daemon.Name() != role {
		return "", fmt.Errorf("role %q: no such command", role)
	}
	for _, f := range flags {
		if f == "--token" || strings.HasPrefix(f, "--token=") {
			return "", errors.New("--token would be readable by every user in a unit file: put PIER_JOIN_TOKEN in /etc/pier/pier-" + role + ".env (mode 0600) instead")
		}
		if strings.ContainsAny(f, "\n\"\\%$") {
			return "", fmt.Errorf("flag %q: newlines, quotes, backslashes, %% and $ are not allowed in a unit", f)
		}
	}
	check := daemon.Flags()
	check.Usage = func() {}
	if err := check.Parse(flags); err != nil {
		return "", fmt.Errorf("pier %s: %w", role, err)
	}
	if check.NArg() > 0 {
		return "", fmt.Errorf("pier %s takes flags only, not %q", role, check.Args())
	}
	if strings.ContainsAny(binary, "\n\"\\%$") {
		return "", fmt.Errorf("--binary %q: newlines, quotes, backslashes, %% and $ are not allowed in a unit", binary)
	}
	var exec []string
	for _, a := range append([]string{binary, role}, flags...) {
		if strings.ContainsAny(a, " \t") {
			a = `"` + a + `"` // systemd splits on spaces, not inside quotes
		}
		exec = append(exec, a)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `[Unit]
Description=%s
Documentation=https://github.com/pierpaas/pier/blob/main/docs/operations.md
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=%s
EnvironmentFile=-/etc/pier/pier-%s.env
Restart=always
RestartSec=1
LimitNOFILE=1048576
`, what, strings.Join(exec, " "), role)
	if role == "host" || role == "up" {
		b.WriteString("# Jobs and their shims outlive the agent: stopping or restarting it\n# must not kill them; the next agent adopts them.\nKillMode=process\n")
	}
	b.WriteString("\n[Install]\nWantedBy=multi-user.target\n")
	return b.String(), nil
}
