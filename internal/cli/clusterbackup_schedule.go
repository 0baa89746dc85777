package cli

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/client"
	"github.com/pierpaas/pier/internal/tarball"
)

// scheduleFlags are pier cluster backup's flags for a schedule.
type scheduleFlags struct {
	schedule bool
	name     string
	every    time.Duration
	at, zone string
	dir      string
	keep     int
	// An S3-compatible store, for --to s3://BUCKET/PREFIX.
	s3Endpoint, s3Region string
	s3Insecure           bool
}

func (f *scheduleFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.BoolVar(&f.schedule, "schedule", false, "have the servers make backups on a schedule (with --every or --at, and --to)")
	fl.StringVar(&f.name, "name", "default", "the schedule's name (a schedule of that name is replaced)")
	fl.DurationVar(&f.every, "every", 0, "a backup every DURATION (24h, 6h; at least 1m), the first at once")
	fl.StringVar(&f.at, "at", "", "a backup every day at HH:MM (24-hour)")
	fl.StringVar(&f.zone, "zone", "", "the time zone of --at (Europe/Paris; default UTC)")
	fl.StringVar(&f.dir, "to", "", "where the backups go: a directory on the servers (an absolute path), or s3://BUCKET[/PREFIX]")
	fl.StringVar(&f.s3Endpoint, "s3-endpoint", "s3.amazonaws.com", "the S3-compatible store's host[:port], for --to s3://…; the keys come from $AWS_ACCESS_KEY_ID and $AWS_SECRET_ACCESS_KEY")
	fl.StringVar(&f.s3Region, "s3-region", "", "the bucket's region, for --to s3://…")
	fl.BoolVar(&f.s3Insecure, "s3-insecure", false, "plain HTTP to the S3 store (a test store on a private network)")
	fl.IntVar(&f.keep, "keep", api.DefaultClusterBackupKeep, "how many of the newest backups to keep")
}

func (f *scheduleFlags) run(cmd *cobra.Command, c *client.Controller) error {
	req := api.ClusterBackupScheduleRequest{Every: api.Duration(f.every), At: f.at, Zone: f.zone, Dir: f.dir, Keep: f.keep}
	if rest, ok := strings.CutPrefix(f.dir, "s3://"); ok {
		bucket, prefix, _ := strings.Cut(rest, "/")
		req.Dir = ""
		req.S3 = &api.ClusterBackupS3{Endpoint: f.s3Endpoint, Bucket: bucket, Prefix: prefix, Region: f.s3Region, Insecure: f.s3Insecure,
			AccessKey: os.Getenv("AWS_ACCESS_KEY_ID"), SecretKey: os.Getenv("AWS_SECRET_ACCESS_KEY")}
	}
	s, err := c.ScheduleClusterBackups(cmd.Context(), f.name, req)
	if err != nil {
		return err
	}
	fmt.Printf("cluster backups %q: %s into %s, keeping %d; next %s\n", s.Name, scheduleWhen(s), scheduleWhere(s), s.Keep, nextWhen(s))
	return nil
}

func scheduleWhere(s api.ClusterBackupSchedule) string {
	if s.S3 != nil {
		return s.S3.String()
	}
	return s.Dir
}

func newClusterBackupSchedulesCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "schedules",
		Short: "List the schedules of cluster backups: when, where, the last outcome and the next time",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := controllerClient()
			if err != nil {
				return err
			}
			ss, err := c.ClusterBackupSchedules(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(os.Stdout, ss)
			}
			rows := [][]string{}
			for _, s := range ss {
				st := s.Status
				if st == nil {
					st = &api.ClusterBackupStatus{}
				}
				last := "never"
				switch {
				case st.LastError != "" && st.LastAttempt.After(st.LastSuccess):
					last = "FAILED " + ago(st.LastAttempt) + ": " + st.LastError
				case !st.LastSuccess.IsZero():
					last = "ok " + ago(st.LastSuccess)
					if len(st.Files) > 0 {
						last += " (" + tarball.HumanSize(st.Files[0].Size) + ")"
					}
				}
				rows = append(rows, []string{s.Name, scheduleWhen(s), scheduleWhere(s), strconv.Itoa(s.Keep),
					strconv.Itoa(len(st.Files)), last, nextWhen(s)})
			}
			table(os.Stdout, []string{"NAME", "WHEN", "TO", "KEEP", "FILES", "LAST", "NEXT"}, rows)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (with the files kept)")
	return cmd
}

func newClusterBackupUnscheduleCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "unschedule NAME",
		Short: "Stop a schedule of cluster backups (the files it made stay)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := controllerClient()
			if err != nil {
				return err
			}
			if err := c.RemoveClusterBackupSchedule(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Printf("cluster backups %q stopped; the files made stay\n", args[0])
			return nil
		},
	}
}

func scheduleWhen(s api.ClusterBackupSchedule) string {
	if s.Every > 0 {
		return "every " + time.Duration(s.Every).String()
	}
	if s.Zone != "" {
		return "daily at " + s.At + " " + s.Zone
	}
	return "daily at " + s.At + " UTC"
}

func nextWhen(s api.ClusterBackupSchedule) string {
	if s.Status == nil || s.Status.Next.IsZero() {
		return "-"
	}
	if !s.Status.Next.After(time.Now()) {
		return "now"
	}
	return s.Status.Next.Local().Format("2006-01-02 15:04 MST")
}
