package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/appliance/backupjob"
	"github.com/pierpaas/pier/client"
)

// pgBackupCommands are Heroku's pg:backups verbs: list, capture,
// restore, download, schedule, unschedule, delete; and the hidden
// backup-job that a backup's one-off runs.
func pgBackupCommands() []*cobra.Command {
	return []*cobra.Command{newPgBackupsCmd(), newPgBackupsCaptureCmd(), newPgBackupsRestoreCmd(), newPgBackupsDownloadCmd(),
		newPgBackupsScheduleCmd(), newPgBackupsUnscheduleCmd(), newPgBackupsDeleteCmd(), newBackupJobCmd()}
}

// backupWait bounds how long capture waits for its job.
const backupWait = time.Hour

func newPgBackupsCmd() *cobra.Command {
	var asJSON bool
	cmd := clientAction(&cobra.Command{
		Use:   "pg:backups [NAME]",
		Short: "List backups (of one resource): size, time, state",
		Args:  cobra.MaximumNArgs(1),
	}, func(cmd *cobra.Command, c *client.Controller, args []string) error {
		name := ""
		if len(args) == 1 {
			name = args[0]
		}
		list, err := c.Backups(cmd.Context(), name)
		if err != nil || asJSON {
			return orJSON(list, err)
		}
		if len(list) == 0 {
			fmt.Println("No backups. Capture one with pier pg:backups:capture NAME")
			return nil
		}
		rows := [][]string{}
		for _, b := range list {
			kept := "until deleted"
			if !b.ExpiresAt.IsZero() {
				kept = "until " + b.ExpiresAt.Local().Format("2006-01-02 15:04")
			}
			state := string(b.State)
			if b.Error != "" {
				state += ": " + shorten(b.Error, 60)
			}
			rows = append(rows, []string{b.ID, b.Resource, b.Database, state, byteSize(b.Size),
				b.CreatedAt.Local().Format("2006-01-02 15:04:05"), kept})
		}
		table(os.Stdout, []string{"ID", "RESOURCE", "DATABASE", "STATE", "SIZE", "STARTED", "KEPT"}, rows)
		return nil
	})
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// byteSize is n bytes for people.
func byteSize(n int64) string {
	switch {
	case n == 0:
		return "-"
	case n < 1<<10:
		return strconv.FormatInt(n, 10) + " B"
	case n < 1<<20:
		return fmt.Sprintf("%.1f kB", float64(n)/(1<<10))
	case n < 1<<30:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.2f GB", float64(n)/(1<<30))
}

func newPgBackupsCaptureCmd() *cobra.Command {
	var app string
	var noWait bool
	cmd := clientAction(&cobra.Command{
		Use:   "pg:backups:capture [NAME] [-a APP]",
		Short: "Back up a PostgreSQL resource's database (the attached app's) into the blobstore",
		Long: `Capture a backup: pg_dump's custom format of the database of the app
attached to the resource (-a when several are), made by a one-off job on
the cluster and stored in the blobstore, where every server keeps a copy.
It is kept until pier pg:backups:delete.`,
		Args: cobra.MaximumNArgs(1),
	}, func(cmd *cobra.Command, c *client.Controller, args []string) error {
		ctx := cmd.Context()
		name, err := pgResource(ctx, c, args, app)
		if err != nil {
			return err
		}
		b, err := c.CaptureBackup(ctx, name, app)
		if err != nil {
			return err
		}
		progress("-----> backing up %s of %s as %s", b.Database, name, b.ID)
		if noWait {
			fmt.Println(b.ID)
			return nil
		}
		b, err = waitBackup(ctx, c, b.ID)
		if err != nil {
			return err
		}
		if b.State != api.BackupSucceeded {
			return fmt.Errorf("backup %s failed: %s", b.ID, b.Error)
		}
		fmt.Printf("Backed up %s to %s (%s in %s)\n", b.Database, b.ID, byteSize(b.Size),
			b.FinishedAt.Sub(b.CreatedAt).Round(100*time.Millisecond))
		return nil
	})
	cmd.Flags().StringVarP(&app, "app", "a", "", "back up this attached app's database")
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "print the backup's id once it is started")
	return cmd
}

// waitBackup polls a backup until it has ended.
func waitBackup(ctx context.Context, c *client.Controller, id string) (api.Backup, error) {
	ctx, cancel := context.WithTimeout(ctx, backupWait)
	defer cancel()
	for {
		b, err := c.Backup(ctx, id)
		var ae *api.Error
		switch {
		case err == nil && b.State.Done():
			return b, nil
		case err != nil && !(errors.As(err, &ae) && ae.Status >= 500):
			return b, err
		}
		select {
		case <-ctx.Done():
			return b, fmt.Errorf("backup %s: %w", id, ctx.Err())
		case <-time.After(300 * time.Millisecond):
		}
	}
}

func newPgBackupsRestoreCmd() *cobra.Command {
	var app string
	cmd := clientAction(&cobra.Command{
		Use:   "pg:backups:restore BACKUP [NAME] [-a APP]",
		Short: "Load a backup into a PostgreSQL resource's database (its own, or another's)",
		Long: `Restore a backup into the database of the app attached to resource NAME
(the backup's own resource when NAME is not given; -a when several apps
are attached). The objects the backup holds are dropped and made again,
owned by the app's role, in one transaction: the restore happens whole or
not at all. Objects the backup does not hold are left alone. pg_restore
runs as a one-off job on the cluster; its output is shown here.`,
		Args: cobra.RangeArgs(1, 2),
	}, func(cmd *cobra.Command, c *client.Controller, args []string) error {
		ctx := cmd.Context()
		req := api.RestoreRequest{Backup: args[0], App: app}
		name := ""
		if len(args) == 2 {
			name = args[1]
		} else {
			b, err := c.Backup(ctx, args[0])
			if err != nil {
				return err
			}
			name = b.Resource
		}
		progress("-----> restoring %s into %s", args[0], name)
		err := runAttached(ctx, &restoreTarget{controllerTarget: controllerTarget{c: c}, name: name, req: req}, false)
		if err != nil {
			return err
		}
		fmt.Printf("Restored %s into %s\n", args[0], name)
		return nil
	})
	cmd.Flags().StringVarP(&app, "app", "a", "", "restore into this attached app's database")
	return cmd
}

// restoreTarget runs a restore job; once started it is attached to like
// any one-off, so its output and exit status are the command's.
type restoreTarget struct {
	controllerTarget
	name string
	req  api.RestoreRequest
}

func (t *restoreTarget) start(ctx context.Context, tty bool) (string, error) {
	job, err := t.c.RestoreBackup(ctx, t.name, t.req)
	t.app = job.App
	return job.ID, err
}

func newPgBackupsDownloadCmd() *cobra.Command {
	var output string
	cmd := clientAction(&cobra.Command{
		Use:   "pg:backups:download BACKUP [-o FILE] > FILE",
		Short: "Write a backup's dump (pg_dump's custom format, for pg_restore) to stdout or a file",
		Args:  cobra.ExactArgs(1),
	}, func(cmd *cobra.Command, c *client.Controller, args []string) error {
		var out io.Writer = os.Stdout
		if output == "" && term.IsTerminal(int(os.Stdout.Fd())) {
			return errors.New("a backup is binary: redirect it (> FILE) or give -o FILE")
		}
		body, err := c.DownloadBackup(cmd.Context(), args[0])
		if err != nil {
			return err
		}
		defer body.Close()
		var f *os.File
		if output != "" {
			// Written beside, renamed once whole: a cut download leaves
			// no file that looks like a backup.
			f, err = os.CreateTemp(dirOf(output), ".pier-backup-*")
			if err != nil {
				return err
			}
			defer os.Remove(f.Name())
			out = f
		}
		n, err := io.Copy(out, body)
		if err != nil {
			if f != nil {
				f.Close()
			}
			return fmt.Errorf("download %s: %w", args[0], err)
		}
		if f != nil {
			if err := f.Close(); err != nil {
				return err
			}
			if err := os.Rename(f.Name(), output); err != nil {
				return err
			}
		}
		progress("-----> %s: %s", args[0], byteSize(n))
		return nil
	})
	cmd.Flags().StringVarP(&output, "output", "o", "", "write to this file instead of stdout")
	return cmd
}

func dirOf(path string) string {
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		return path[:i+1]
	}
	return "."
}

func newPgBackupsScheduleCmd() *cobra.Command {
	var app, at string
	var keep int
	cmd := clientAction(&cobra.Command{
		Use:   "pg:backups:schedule [NAME] --at 'HH:MM [ZONE]' [--keep-days N] [-a APP]",
		Short: "Back up a PostgreSQL resource's database every day, keeping each backup N days (7)",
		Long: `Capture a backup every day at --at, a 24-hour time in UTC or in the time
zone named after it ('02:00 Europe/Paris'). Scheduled backups are kept
--keep-days days (default 7), then deleted; captured ones stay.`,
		Args: cobra.MaximumNArgs(1),
	}, func(cmd *cobra.Command, c *client.Controller, args []string) error {
		ctx := cmd.Context()
		if at == "" {
			return errors.New("when? give --at HH:MM (24-hour, UTC unless a zone follows)")
		}
		name, err := pgResource(ctx, c, args, app)
		if err != nil {
			return err
		}
		clock, zone, _ := strings.Cut(strings.TrimSpace(at), " ")
		res, err := c.ScheduleBackups(ctx, name, &api.ScheduleRequest{At: clock, Zone: strings.TrimSpace(zone), KeepDays: keep, App: app})
		if err != nil {
			return err
		}
		s := res.BackupSchedule
		fmt.Printf("Backing up %s of %s every day at %s %s, kept %d days\n", s.Database, name, s.At, cmpOr(s.Zone, "UTC"), s.KeepDays)
		return nil
	})
	cmd.Flags().StringVar(&at, "at", "", "the time of day, HH:MM, optionally followed by a time zone")
	cmd.Flags().IntVar(&keep, "keep-days", 0, "how many days each scheduled backup is kept (default 7)")
	cmd.Flags().StringVarP(&app, "app", "a", "", "back up this attached app's database")
	return cmd
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func newPgBackupsUnscheduleCmd() *cobra.Command {
	return clientAction(&cobra.Command{
		Use:   "pg:backups:unschedule [NAME]",
		Short: "Stop a PostgreSQL resource's daily backups (those made stay until they expire)",
		Args:  cobra.MaximumNArgs(1),
	}, func(cmd *cobra.Command, c *client.Controller, args []string) error {
		name, err := pgResource(cmd.Context(), c, args, "")
		if err != nil {
			return err
		}
		if _, err := c.ScheduleBackups(cmd.Context(), name, nil); err != nil {
			return err
		}
		fmt.Printf("No more daily backups of %s\n", name)
		return nil
	})
}

func newPgBackupsDeleteCmd() *cobra.Command {
	return clientAction(&cobra.Command{
		Use:   "pg:backups:delete BACKUP",
		Short: "Delete a backup (its dump leaves every server with the next garbage collection)",
		Args:  cobra.ExactArgs(1),
	}, func(cmd *cobra.Command, c *client.Controller, args []string) error {
		if err := c.DeleteBackup(cmd.Context(), args[0]); err != nil {
			return err
		}
		fmt.Printf("Deleted %s\n", args[0])
		return nil
	})
}

// newBackupJobCmd is what a backup or restore job runs (see
// appliance/backupjob): hidden, like slugrun, since only jobs run it.
func newBackupJobCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "backup-job backup|restore -- COMMAND [ARGS...]",
		Short:  "Stream a datastore's dump to or from the controller (inside a backup job)",
		Hidden: true,
		Args:   cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch args[0] {
			case "backup":
				return backupjob.Capture(cmd.Context(), os.Getenv, args[1:])
			case "restore":
				return backupjob.Restore(cmd.Context(), os.Getenv, args[1:])
			}
			return fmt.Errorf("backup-job: %q is neither backup nor restore", args[0])
		},
	}
}
