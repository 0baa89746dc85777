package cli

import (
	"strings"

	"github.com/spf13/cobra"

	"github.com/pierpaas/pier/appliance/redis"
)

// redisBackupCommands are pg:backups's list, capture, restore,
// download, schedule, unschedule and delete for Redis resources: the same backups (records, blobstore,
// one-off jobs of the resource's system app, GC), of RDB snapshots. A
// snapshot holds the whole server, whichever app is named.
func redisBackupCommands() []*cobra.Command {
	list := redisBackups(newPgBackupsCmd(), "redis:backups [NAME]", "List backups of Redis resources (of one): size, time, state", true)
	capture := redisBackups(newPgBackupsCaptureCmd(), "redis:backups:capture [NAME]",
		"Back up a Redis resource (an RDB snapshot of the whole server) into the blobstore", false)
	capture.Long = `Capture a backup: an RDB snapshot of the resource's server (every key,
whichever app wrote it), fetched by a one-off job on the cluster and stored
in the blobstore, where every server keeps a copy. It is kept until
pier redis:backups:delete.`
	restore := newPgBackupsRestoreCmd()
	restore.Use = "redis:backups:restore BACKUP [NAME]"
	restore.Short = "Load a Redis backup into a Redis resource (its own, or another's)"
	restore.Long = `Restore a backup into Redis resource NAME (the backup's own resource when
NAME is not given): every key the snapshot holds replaces the key of the
same name (MIGRATE ... REPLACE, TTLs kept); keys it does not hold are left
alone. A one-off job on the cluster loads the snapshot into a private
redis-server and copies its keys; its output is shown here.`
	download := newPgBackupsDownloadCmd()
	download.Use = "redis:backups:download BACKUP [-o FILE] > FILE"
	download.Short = "Write a Redis backup (an RDB file, for redis-server's dir) to stdout or a file"
	schedule := redisBackups(newPgBackupsScheduleCmd(), "redis:backups:schedule [NAME] --at 'HH:MM [ZONE]' [--keep-days N]",
		"Capture a Redis resource's snapshot every day, kept --keep-days", false)
	unschedule := redisBackups(newPgBackupsUnscheduleCmd(), "redis:backups:unschedule [NAME]", "Stop a Redis resource's daily backups", false)
	del := newPgBackupsDeleteCmd()
	del.Use, del.Short = "redis:backups:delete BACKUP", "Delete a Redis backup"
	return []*cobra.Command{list, capture, restore, download, schedule, unschedule, del, newRedisRestoreCmd()}
}

// redisBackups renames a pg:backups command and, when no NAME is given,
// names the Redis resource (the one attached to -a's app, if the command
// has -a) before running it; list keeps listing every backup when
// several Redis resources leave the choice open.
func redisBackups(cmd *cobra.Command, use, short string, lenient bool) *cobra.Command {
	cmd.Use, cmd.Short = use, short
	run := cmd.RunE
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			app := ""
			if f := cmd.Flags().Lookup("app"); f != nil {
				app = f.Value.String()
			}
			c, err := controllerClient()
			if err != nil {
				return err
			}
			name, err := typedResource(cmd.Context(), c, "redis", nil, app)
			c.Close()
			switch {
			case err == nil:
				args = []string{name}
			case !lenient || !strings.HasPrefix(err.Error(), "several"):
				return err
			}
		}
		return run(cmd, args)
	}
	return cmd
}

// newRedisRestoreCmd is what a Redis restore job runs (see
// appliance/redis): the snapshot on its stdin.
func newRedisRestoreCmd() *cobra.Command {
	return &cobra.Command{
		Use:    redis.RestoreCommand,
		Short:  "Load an RDB snapshot on stdin into a Redis resource's member (inside a restore job)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE:   func(cmd *cobra.Command, _ []string) error { return redis.RunRestore(cmd.Context(), cmd.InOrStdin()) },
	}
}
