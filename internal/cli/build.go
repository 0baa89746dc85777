package cli

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/build"
	"github.com/pierpaas/pier/runtime/pid1"
)

// The commands in this file run inside containers, from the pier binary
// the host agent binds at api.PierBinary: the build job, the slug runner
// and the static file server. Users never type them.

func newSlugbuildCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "slugbuild",
		Short:  "Build /app into a slug (the build job)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			// The job's output is the user's build log: the error goes there
			// too, in the buildpack style, rather than as a "pier:" line.
			err := build.RunJob(cmd.Context(), os.Getenv, os.Stdout)
			if err == nil {
				return nil
			}
			msg := err.Error()
			// The buildpack's own explanation is already on the screen.
			if ce := (*build.CompileError)(nil); errors.As(err, &ce) {
				msg = fmt.Sprintf("the %s buildpack could not compile the app (%v)", ce.Buildpack, ce.Err)
			}
			fmt.Fprintf(os.Stdout, "\n !     Build failed: %s\n", strings.ReplaceAll(msg, "\n", "\n       "))
			return exitError{code: 1}
		},
	}
}

func newSlugrunCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "slugrun -- COMMAND",
		Short: "Run a Procfile command from the slug at /app",
		Long: `Run a Procfile command the way Heroku does: HOME=/app, .profile.d/*.sh and
.profile sourced, then the command under bash. Several arguments are joined
with spaces into one command.`,
		Hidden: true,
		Args:   cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return build.RunSlug(strings.Join(args, " "))
		},
	}
}

// slugInitCommand lets pier init (runtime/pid1), the first process of
// every container, run a slug runner's command itself: for `pier slugrun
// -- COMMAND` it runs what the slug runner would exec, so that the pier
// binary, whose start is not free, starts once per job rather than twice.
func slugInitCommand(argv []string) (pid1.Command, bool) {
	if len(argv) < 4 || (argv[0] != api.PierBinary && argv[0] != os.Args[0]) || argv[1] != "slugrun" || argv[2] != "--" {
		return pid1.Command{}, false
	}
	args, env, dir := build.SlugCommand(strings.Join(argv[3:], " "))
	return pid1.Command{Args: args, Env: env, Dir: dir}, true
}

func newServeStaticCmd() *cobra.Command {
	var root, port string
	cmd := &cobra.Command{
		Use:    "serve-static",
		Short:  "Serve a directory over HTTP (the static buildpack's web process)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			daemonLogger(false)
			if port == "" {
				return fmt.Errorf("serve-static: no port: set PORT or --port")
			}
			return build.ServeStatic(cmd.Context(), root, net.JoinHostPort("", port))
		},
	}
	cmd.Flags().StringVar(&root, "root", ".", "the directory to serve")
	cmd.Flags().StringVar(&port, "port", os.Getenv("PORT"), "the TCP port to listen on (default $PORT)")
	return cmd
}
