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
	"github.com/pierpaas/pier/internal/appjson"
	"github.com/pierpaas/pier/internal/procfile"
	"github.com/pierpaas/pier/internal/tarball"
)

func newDeployCmd() *cobra.Command {
	var ac appCommand
	var noWait, noBuild bool
	var image string
	cmd := &cobra.Command{
		Use:   "deploy [DIR]",
		Short: "Build a directory on the cluster and deploy it as the app's next release",
		Long: `Deploy DIR (default: the current directory) as a new release: pier packs
it into a tarball (leaving out .git) and uploads it; the cluster builds it
with buildpacks, as git push pier main does, showing the build's output,
and releases the slug. The release keeps the current config vars, and is
rolled out by the app's deploy strategy; pier waits for the deployment and
fails if the build fails or the deployment is rolled back, saying why.

With --no-build, DIR is released as it is, with the process types of
DIR/Procfile and DIR/app.json, without a build step.

With --image REF, the OCI image REF is released instead, pinned to the
digest REF has now: its web process runs the image's entrypoint and cmd
with PORT set. REF may be in the cluster's own registry
(SERVER:7300/APP:TAG, pushed with user pier and an API key) or in any
registry docker login knows.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if image != "" {
				if len(args) > 0 || noBuild {
					return fmt.Errorf("--image deploys an image: no DIR, no --no-build")
				}
				app, c, err := ac.resolve()
				if err != nil {
					return err
				}
				defer c.Close()
				return deployImage(cmd.Context(), c, app, image, noWait)
			}
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
			// A typo in -a fails now, not after packing and uploading.
			if _, err := c.App(ctx, app); err != nil {
				return err
			}
			var procs map[string]api.ProcessType
			var manifest string
			if noBuild {
				if procs, manifest, err = readProcfile(app, dir); err != nil {
					return err
				}
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
			if !noBuild {
				ev, err := c.Build(ctx, app, "upload", stats.Written, io.TeeReader(tmp, p), printBuildEvent)
				p.Done()
				if err != nil {
					return err
				}
				if a, err := c.App(ctx, app); err == nil && a.URL != "" && ev.Result != nil {
					fmt.Printf("Release v%d\n%s is live at %s\n", ev.Result.Release.Version, a.Name, a.URL)
				}
				return nil
			}
			if err := c.PutBlob(ctx, digest, stats.Written, io.TeeReader(tmp, p)); err != nil {
				return fmt.Errorf("upload: %w", err)
			}
			p.Done()
			res, err := c.CreateRelease(ctx, app, api.CreateReleaseRequest{
				Artifact:  &api.Artifact{Type: "slug", SHA256: digest, Size: stats.Written},
				Processes: procs,
				AppJSON:   manifest,
			})
			if err != nil {
				return err
			}
			return announceRelease(ctx, c, res, noWait)
		},
	}
	ac.register(cmd)
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "with --no-build or --image: return once the release is made, without waiting for its deployment")
	cmd.Flags().StringVar(&image, "image", "", "deploy the OCI image REF (pinned to its digest now) instead of a directory")
	cmd.Flags().BoolVar(&noBuild, "no-build", false, "release DIR as it is, with DIR/Procfile, without building it")
	return cmd
}

// readProcfile reads DIR/Procfile into process types, with what
// DIR/app.json declares (see internal/appjson), and returns the text of
// app.json for the controller, which checks it again.
func readProcfile(app, dir string) (map[string]api.ProcessType, string, error) {
	f, err := os.Open(filepath.Join(dir, "Procfile"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", fmt.Errorf("no Procfile in %s: it names the process types to run (web: COMMAND)", dir)
	}
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	pf, err := procfile.Parse(f)
	if err != nil {
		return nil, "", err
	}
	if len(pf) == 0 {
		return nil, "", fmt.Errorf("the Procfile in %s names no process types", dir)
	}
	data, err := os.ReadFile(filepath.Join(dir, appjson.FileName))
	if errors.Is(err, fs.ErrNotExist) {
		return procfile.ProcessTypes(app, pf), "", nil
	} else if err != nil {
		return nil, "", err
	}
	m, err := appjson.Parse(data)
	if err != nil {
		return nil, "", err
	}
	if err := m.Commands(pf); err != nil {
		return nil, "", err
	}
	procs := procfile.ProcessTypes(app, pf)
	if err := m.Configure(procs); err != nil {
		return nil, "", err
	}
	for _, w := range m.Warnings() {
		progress("warning: %s", w)
	}
	return procs, m.Text(), nil
}
