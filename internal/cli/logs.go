package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/client"
)

// newLogsCmd is `pier logs`.
func newLogsCmd() *cobra.Command {
	var (
		q      client.LogsQuery
		asJSON bool
		tail   bool
		dyno   string
	)
	cmd := appAction(&cobra.Command{
		Use:   "logs",
		Short: "Show an app's log lines, and with -f follow them",
		Long: `Show the newest lines of an app's log: what every job of the app printed,
on every host, and the platform's own lines (deploys, scaling, crashes).
With -f pier goes on printing lines as they come, and rides out the log
aggregator moving to another server. Lines look like Heroku's:

  2026-12-02T07:00:00.000000+00:00 app[web.hello-web-4f2a]: listening on 5000
  2026-12-02T07:00:01.000000+00:00 pier[api]: Deploy v3 finished

As on Heroku, -t (--tail) follows too. -d (--dyno) keeps one process
type's lines (-d web) or one job's (-d web.JOBID, or the job's id: pier
run --detach prints it); -s (--source) keeps the jobs' own lines (app) or
the platform's (pier). --type and -j/--job are the older spellings of
-d; --json prints each line as a JSON object.`,
		Args: cobra.NoArgs,
	}, func(cmd *cobra.Command, c *client.Controller, app string, _ []string) error {
		q := q
		q.Follow = q.Follow || tail
		if dyno != "" {
			if q.Type != "" || q.Job != "" {
				return errors.New("give -d, or --type and --job, not both")
			}
			q.Type, q.Job = parseDyno(app, dyno)
		}
		switch q.Source {
		case "", api.LogSourceApp, api.LogSourcePier:
		default:
			return fmt.Errorf("--source %q: want %s (the jobs' lines) or %s (the platform's)", q.Source, api.LogSourceApp, api.LogSourcePier)
		}
		return streamLogs(cmd, c, app, q, asJSON, os.Stdout)
	})
	fl := cmd.Flags()
	fl.BoolVarP(&q.Follow, "follow", "f", false, "go on printing new lines")
	fl.BoolVarP(&tail, "tail", "t", false, "go on printing new lines (as -f; Heroku's spelling)")
	fl.IntVarP(&q.Lines, "num", "n", 100, "how many of the newest lines to print first")
	fl.StringVarP(&dyno, "dyno", "d", "", "only this process type's lines (web), or this job's (web.JOBID or JOBID)")
	fl.StringVarP(&q.Source, "source", "s", "", "only the lines of this source: app (the jobs') or pier (the platform's)")
	fl.StringVar(&q.Type, "type", "", "only this process type's lines (web, worker, router...)")
	fl.StringVarP(&q.Job, "job", "j", "", "only this job's lines")
	fl.BoolVar(&asJSON, "json", false, "print each line as a JSON object")
	return cmd
}

// parseDyno reads -d: "web" is a process type, "web.JOBID" and a job's
// own id ("<app>-web-...") a job.
func parseDyno(app, d string) (ptype, job string) {
	if t, j, ok := strings.Cut(d, "."); ok {
		return t, j
	}
	if strings.HasPrefix(d, app+"-") {
		return "", d
	}
	return d, ""
}

// streamLogs prints the lines, and with Follow reconnects when the stream
// ends (the aggregator moved or restarted). On a reconnect it asks for
// recent lines again and skips those already printed: a job's lines by
// their number, platform lines by time.
func streamLogs(cmd *cobra.Command, c *client.Controller, app string, q client.LogsQuery, asJSON bool, out io.Writer) error {
	ctx := cmd.Context()
	enc := json.NewEncoder(out)
	seen := map[string]uint64{} // job → newest line number printed
	var lastPlatform time.Time
	reconnected := false
	emit := func(l api.AppLogLine) error {
		if l.Job != "" && l.Seq > 0 {
			if l.Seq <= seen[l.Job] {
				return nil
			}
			seen[l.Job] = l.Seq
		} else {
			if reconnected && !l.Time.After(lastPlatform) {
				return nil
			}
			if l.Time.After(lastPlatform) {
				lastPlatform = l.Time
			}
		}
		if asJSON {
			return enc.Encode(l)
		}
		_, err := fmt.Fprintln(out, FormatLogLine(&l))
		return err
	}
	backoff := 500 * time.Millisecond
	for {
		err := c.Logs(ctx, app, q, emit)
		if !q.Follow || ctx.Err() != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		var ae *api.Error
		if errors.As(err, &ae) && ae.Status < 500 {
			return err
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "pier: log stream interrupted (%v); reconnecting\n", err)
		} else {
			backoff = 500 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
		q.Lines = max(q.Lines, 1000) // catch up on what came in between
		reconnected = true
	}
}

// FormatLogLine formats a line as Heroku does:
// "2026-12-02T07:00:00.000000+00:00 app[web.JOBID]: text".
func FormatLogLine(l *api.AppLogLine) string {
	src := l.Source
	if src == "" {
		src = api.LogSourceApp
	}
	return l.Time.UTC().Format("2006-01-02T15:04:05.000000-07:00") + " " + src + "[" + l.Dyno() + "]: " + l.Text
}
