package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/internal/procfile"
	"github.com/pierpaas/pier/internal/tarball"
)

func newDeployCmd() *cobra.Command {
	var ac appCommand
	var noWait bool
	cmd := &cobra.Command{
		Use:   "deploy [DIR]",
		Short: "Deploy a directory as the app's next release",
		Long: `Deploy DIR (default: the current directory) as a new release: pier packs
it into a tarball (leaving out .git), uploads it to the cluster's blobstore,
and creates a release whose process types come from DIR/Procfile. The
release keeps the current config vars, and is rolled out by the app's
deploy strategy; pier waits for the deployment and fails if it is rolled
back, saying why.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			app, c, err := ac.resolve()
			if err != nil {
				return err
			}
			defer c.Close()
			ctx := cmd.Context()
			procs, err := readProcfile(app, dir)
			if err != nil {
				return err
			}
			tmp, err := os.CreateTemp("", "pier-deploy-*.tar.gz")
			if err != nil {
				return err
			}
			defer os.Remove(tmp.Name())
			defer tmp.Close()
			h := sha256.New()
			stats, err := tarball.Pack(ctx, dir, io.MultiWriter(tmp, h), tarball.Options{
				Warn: func(msg string) { progress("warning: %s", msg) },
			})
			if err != nil {
				return err
			}
			digest := hex.EncodeToString(h.Sum(nil))
			progress("-----> packed %s: %d files, %s", dir, stats.Files, tarball.HumanSize(stats.Written))
			if _, err := tmp.Seek(0, io.SeekStart); err != nil {
				return err
			}
			var bar io.Writer = io.Discard
			if term.IsTerminal(int(os.Stderr.Fd())) {
				bar = os.Stderr
			}
			p := tarball.NewProgress(bar, stats.Written, "-----> uploading")
			if err := c.PutBlob(ctx, digest, stats.Written, io.TeeReader(tmp, p)); err != nil {
				return fmt.Errorf("upload: %w", err)
			}
			p.Done()
			res, err := c.CreateRelease(ctx, app, api.CreateReleaseRequest{
				Artifact:  &api.Artifact{Type: "slug", SHA256: digest, Size: stats.Written},
				Processes: procs,
			})
			if err != nil {
				return err
			}
			return announceRelease(ctx, c, res, noWait)
		},
	}
	ac.register(cmd)
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "return once the release is made, without waiting for its deployment")
	return cmd
}

// readProcfile reads DIR/Procfile into process types.
func readProcfile(app, dir string) (map[string]api.ProcessType, error) {
	f, err := os.Open(filepath.Join(dir, "Procfile"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no Procfile in %s: it names the process types to run (web: COMMAND)", dir)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	pf, err := procfile.Parse(f)
	if err != nil {
		return nil, err
	}
	if len(pf) == 0 {
		return nil, fmt.Errorf("the Procfile in %s names no process types", dir)
	}
	return procfile.ProcessTypes(app, pf), nil
}
