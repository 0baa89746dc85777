package cli

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/pierpaas/pier/gitreceive"
)

// newGitHookCmd is git's pre-receive hook in every app repository: the
// git receiver writes a hook that execs it, and it hands the push to the
// receiver that started git, which runs the build.
func newGitHookCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "git-hook",
		Short:  "Build a pushed commit (git's pre-receive hook; started by git)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := gitreceive.RunHook(cmd.Context(), os.Stdin, os.Stderr, os.Getenv); err != nil {
				// RunHook has told the pusher why, on stderr.
				return exitError{code: 1}
			}
			return nil
		},
	}
}
