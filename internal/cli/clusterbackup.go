package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/pierpaas/pier/backup"
	"github.com/pierpaas/pier/internal/server"
	"github.com/pierpaas/pier/internal/tarball"
)

func newClusterBackupCmd() *cobra.Command {
	var out string
	var sched scheduleFlags
	cmd := &cobra.Command{
		Use:   "backup [-o FILE | --schedule --every DURATION|--at HH:MM --to DIR [--keep N]]",
		Short: "Write a backup of the whole cluster (store, CA, artifacts) to FILE or stdout; it is a secret",
		Long: `Write a backup of the whole cluster while it serves: a consistent etcd
snapshot (apps, releases, config, routes and their certificates, API and SSH
keys, resources' definitions), the cluster CA with its private key, and every
artifact kept releases, build caches and database backups need, with a
manifest of versions and checksums. The stream is checked as it arrives: a
backup cut short is an error. The file holds the CA's key and every secret
of the cluster: -o writes it with mode 0600, and so does a redirect to a
regular file. Restore it with 'pier cluster restore' or 'pier up --restore'.

With --schedule, the servers make backups themselves: every DURATION
(--every 24h; the first at once) or once a day (--at 02:00, in --zone or
UTC), into the directory --to on the server that makes them (the elected
one: in a cluster of several servers, give a directory on storage they
share), keeping the --keep newest and removing older ones. Each file is
written, synced and read back through its checksums before it takes its
name (pier-backup-NAME-TIME.tar). Schedules live in the cluster: they
survive restarts and move with the election. 'pier cluster backup
schedules' lists them with their last outcome and next time, 'pier
cluster backup unschedule NAME' stops one (its files stay).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := controllerClient()
			if err != nil {
				return err
			}
			if sched.schedule || cmd.Flags().Changed("every") || cmd.Flags().Changed("at") || cmd.Flags().Changed("to") {
				if !sched.schedule {
					return errors.New("--every, --at and --to go with --schedule")
				}
				if out != "" {
					return errors.New("-o writes one backup now; a schedule writes into --to DIR")
				}
				return sched.run(cmd, c)
			}
			w, done, err := backupOutput(out)
			if err != nil {
				return err
			}
			body, err := c.ClusterBackup(cmd.Context())
			if err != nil {
				done(err)
				return err
			}
			defer body.Close()
			cw := &countWriter{w: w}
			m, err := backup.Verify(io.TeeReader(body, cw))
			if err != nil {
				err = fmt.Errorf("the backup did not arrive whole (see the server's log): %w", err)
			}
			if err := done(err); err != nil {
				return err
			}
			n, size := m.Blobs()
			fmt.Fprintf(os.Stderr, "backup of %s written: %s, etcd snapshot and %d artifacts (%s), checked\n",
				m.Server, tarball.HumanSize(cw.n), n, tarball.HumanSize(size))
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "write to FILE (mode 0600) instead of stdout")
	sched.add(cmd)
	cmd.AddCommand(newClusterBackupSchedulesCmd(), newClusterBackupUnscheduleCmd())
	return cmd
}

// backupOutput is where a backup goes, and done, to call with the
// outcome: it puts -o's file in place only on success.
func backupOutput(path string) (io.Writer, func(error) error, error) {
	if path == "" || path == "-" {
		if term.IsTerminal(int(os.Stdout.Fd())) {
			return nil, nil, errors.New("a backup is not for a terminal: redirect it (> FILE) or use -o FILE")
		}
		if fi, err := os.Stdout.Stat(); err == nil && fi.Mode().IsRegular() {
			os.Stdout.Chmod(0o600) // the shell made it with the umask's mode
		}
		return os.Stdout, func(err error) error { return err }, nil
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return nil, nil, err
	}
	return f, func(err error) error {
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(f.Name(), path)
		}
		if err != nil {
			os.Remove(f.Name())
		}
		return err
	}, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func newClusterRestoreCmd() *cobra.Command {
	var dataDir, domain string
	var check bool
	cmd := &cobra.Command{
		Use:   "restore FILE",
		Short: "Check a backup and prepare a new server's data directory from it",
		Long: `Check every checksum of a backup made by 'pier cluster backup' and, only if
all match, prepare an empty data directory from it: the cluster CA (CLI
configs and API keys keep working), the artifacts, and the store's keys,
which the next 'pier up' or 'pier server' on that directory loads before
it starts anything. State of the old machines (hosts, jobs, instances,
leaders) is left out: the scheduler places every process on the new hosts.
With --domain, routes under the backed-up cluster's domain move to the new
one. A damaged or incomplete file is refused and nothing is written.

'pier up --restore FILE' does this and starts in one step.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if check {
				f, err := os.Open(args[0])
				if err != nil {
					return err
				}
				defer f.Close()
				m, err := backup.Verify(f)
				if err != nil {
					return fmt.Errorf("%s: %w", args[0], err)
				}
				return printManifest(m)
			}
			m, err := server.StageRestore(cmd.Context(), args[0], dataDir, domain, nil)
			if err != nil {
				return err
			}
			if err := printManifest(m); err != nil {
				return err
			}
			fmt.Printf("%s is ready: start 'pier up --data-dir %s' (or 'pier server') on it\n", dataDir, dataDir)
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", defaultDataDir(), "the new server's data directory (must be empty)")
	cmd.Flags().StringVar(&domain, "domain", "", "move routes under the old cluster domain to this one")
	cmd.Flags().BoolVar(&check, "check", false, "only check the file's checksums and show what it holds")
	return cmd
}

func printManifest(m *backup.Manifest) error {
	n, size := m.Blobs()
	fmt.Printf("backup of %s made %s by pier %s (etcd %s)\n  domain: %s\n  artifacts: %d (%s)\n  checksums: all %d match\n",
		m.Server, m.CreatedAt.Format("2006-01-02 15:04:05 MST"), m.PierVersion, m.EtcdVersion, orNone(m.Domain), n, tarball.HumanSize(size), len(m.Entries))
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
