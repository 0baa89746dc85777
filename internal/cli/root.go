package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/pierpaas/pier/internal/daemon"
	"github.com/pierpaas/pier/internal/selfexec"
	"github.com/pierpaas/pier/runtime/pid1"
)

// Version is set at build time with -ldflags "-X ...cli.Version=...".
var Version = "dev"

// Main runs the command line and returns the process exit code.
func Main(args []string) int {
	if len(args) > 0 && args[0] == pid1.Subcommand {
		// Every container's first process, there for the job's whole
		// life: no command tree, no signal context, nothing but the init.
		return pid1.Main(args[1:], slugInitCommand)
	}
	if isGitRemoteHelper(os.Args[0]) {
		// git runs the binary as git-remote-pier REMOTE URL.
		args = append([]string{"git-remote-helper"}, args...)
	}
	// A daemon re-executed by an upgrade inherits its predecessor's
	// children (a host agent's shims): someone must reap them.
	selfexec.ReapInherited()
	root := newRoot()
	root.SetArgs(args)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// An upgrade ends the daemon's command as SIGTERM would, then the
	// new binary takes the process over (selfexec).
	ctx, cancel := selfexec.Context(ctx)
	defer cancel()
	err := root.ExecuteContext(ctx)
	if path := selfexec.Pending(); path != "" && err == nil {
		err = selfexec.Exec(path)
		err = fmt.Errorf("re-executing %s: %w", path, err)
	}
	var ee exitError
	switch {
	case errors.As(err, &ee):
		return ee.code
	case err != nil:
		fmt.Fprintln(os.Stderr, "pier:", err)
		return 1
	}
	return 0
}

// exitError carries a specific exit code (e.g. a one-off job's) out of a command.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "pier",
		Short:         "pier: a self-hosted platform as a service",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       Version,
	}
	root.PersistentFlags().StringVar(&clusterFlag, "cluster", "", "the cluster to talk to (default: the config's default)")
	root.AddCommand(newServerCmd(), newUpCmd(), newDownCmd(), newTokenCmd(), newHostCmd(), newRouterCmd(), newShimCmd(), newServiceCmd(), newUpgradeGuardCmd())
	root.AddCommand(newCreateCmd(), newAppsCmd(), newInfoCmd(), newDestroyCmd(),
		newEnvCmd("env"), newEnvCmd("config"), newScaleCmd(), newReleasesCmd(), newRollbackCmd(),
		newPsCmd(), newKillCmd(), newResizeCmd(), newRunCmd(), newDeployCmd(), newEventsCmd(),
		newClusterCmd(), newAPIKeysCmd(), newHostsCmd(), newServersCmd(), newStatusCmd(), newDashboardCmd())
	root.AddCommand(colonAliases()...)
	root.AddCommand(herokuCommands()...)
	root.AddCommand(routeCommands()...)
	root.AddCommand(keysCommands()...)
	root.AddCommand(buildsCommands()...)
	root.AddCommand(volumesCommands()...)
	root.AddCommand(resourceCommands()...)
	root.AddCommand(newLogsCmd(), newDrainsCmd(), newAccessCmd())
	root.AddCommand(drainsColonAliases()...)
	root.AddCommand(newGitRemoteCmd(), newGitCredentialCmd(), newGitHookCmd(), newGitRemoteHelperCmd())
	root.AddCommand(newSlugbuildCmd(), newSlugrunCmd(), newServeStaticCmd(), newPgMemberCmd(), newRedisMemberCmd())
	addHerokuAliases(root)
	return root
}

// daemonLogger is the logger every daemon command uses.
func daemonLogger(verbose bool) *slog.Logger {
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	l := daemon.NewLogger(os.Stderr, level)
	slog.SetDefault(l)
	return l
}

// defaultDataDir is /var/lib/pier for root and ~/.local/share/pier for
// others, unless PIER_DATA_DIR says otherwise.
func defaultDataDir() string {
	if d := os.Getenv("PIER_DATA_DIR"); d != "" {
		return d
	}
	if os.Geteuid() == 0 {
		return "/var/lib/pier"
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ".pier"
	}
	return filepath.Join(home, ".local", "share", "pier")
}
