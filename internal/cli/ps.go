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
	"github.com/pierpaas/pier/scheduler"
)

func newScaleCmd() *cobra.Command {
	var asJSON bool
	cmd := appAction(&cobra.Command{
		Use:   "scale [TYPE=N...]",
		Short: "Set how many jobs of each process type run; with no arguments, show it",
	}, func(cmd *cobra.Command, c *client.Controller, app string, args []string) error {
		counts := map[string]int{}
		for _, a := range args {
			k, v, ok := strings.Cut(a, "=")
			n, err := strconv.Atoi(v)
			if !ok || k == "" || err != nil {
				return fmt.Errorf("%q: want TYPE=COUNT, like web=3", a)
			}
			counts[k] = n
		}
		var f api.AppFormation
		var err error
		if len(counts) == 0 {
			f, err = c.Formation(cmd.Context(), app)
		} else {
			f, err = c.Scale(cmd.Context(), app, counts)
		}
		if err != nil || asJSON {
			return orJSON(f, err)
		}
		fmt.Println(formatCounts(f.Processes))
		return nil
	})
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newPsCmd() *cobra.Command {
	var asJSON, all bool
	cmd := appAction(&cobra.Command{
		Use:   "ps",
		Short: "List an app's jobs, and why any wait for a host",
		Args:  cobra.NoArgs,
	}, func(cmd *cobra.Command, c *client.Controller, app string, _ []string) error {
		jobs, err := c.Jobs(cmd.Context(), app)
		if err == nil && !all {
			jobs.Jobs = withoutBuilds(jobs.Jobs)
		}
		if err != nil || asJSON {
			return orJSON(jobs, err)
		}
		rows := [][]string{}
		for _, j := range jobs.Jobs {
			typ := j.ProcessType
			if j.OneOff {
				typ = "run: " + shorten(strings.Join(j.Args, " "), 30)
			}
			state := string(j.State)
			switch {
			case j.Crashed():
				state = crashedState(j, time.Now())
			case j.Desired == api.DesiredShutdown && !j.State.Terminal():
				state = "stopping"
			case j.Healthy != nil && !*j.Healthy && j.State == api.JobRunning:
				state += " (unhealthy)"
			case j.ExitCode != nil:
				state += fmt.Sprintf(" (exit %d)", *j.ExitCode)
			case j.Pending != "":
				state += ": " + j.Pending
			}
			ver := "-"
			if j.Version > 0 {
				ver = fmt.Sprintf("v%d", j.Version)
			}
			rows = append(rows, []string{j.ID, typ, ver, state, orDash(j.HostID), orDash(strings.Join(j.Addrs, ",")),
				strconv.Itoa(j.Restarts), ago(j.StartedAt)})
		}
		table(os.Stdout, []string{"ID", "TYPE", "RELEASE", "STATE", "HOST", "ADDR", "RESTARTS", "STARTED"}, rows)
		for _, p := range jobs.Pending {
			if p.Reason == scheduler.WaitingToRestart && crashedShown(jobs.Jobs, p) {
				continue // the crashed job's row says when
			}
			fmt.Printf("%s pending: %s\n", plural(p.Count, p.ProcessType+" job", p.ProcessType+" jobs"), p.Reason)
		}
		return nil
	})
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().BoolVar(&all, "all", false, "list build jobs too (pier builds lists the builds)")
	return cmd
}

// crashedState says how a service job ended and when its process type
// restarts next, as Heroku's "crashed" dyno: "crashed (exit 3), restarts
// in 8s".
func crashedState(j api.AppJob, now time.Time) string {
	state := "crashed"
	if j.State != api.JobFailed {
		state += " (" + string(j.State)
		if j.ExitCode == nil && j.Error != "" {
			state += ": " + shorten(j.Error, 40)
		}
		state += ")"
	}
	if j.ExitCode != nil {
		state += fmt.Sprintf(" (exit %d)", *j.ExitCode)
	} else if j.State == api.JobFailed && j.Error != "" {
		state += " (" + shorten(j.Error, 40) + ")"
	}
	switch {
	case j.RestartAt.IsZero():
		state += ", not restarted"
	case j.RestartAt.After(now):
		state += ", restarts in " + j.RestartAt.Sub(now).Round(time.Second).String()
	default:
		state += ", restarting"
	}
	return state
}

// crashedShown reports whether a crashed job of p's process type and
// release is listed.
func crashedShown(jobs []api.AppJob, p api.Pending) bool {
	for _, j := range jobs {
		if j.Crashed() && j.Release == p.Release && j.ProcessType == p.ProcessType {
			return true
		}
	}
	return false
}

// withoutBuilds leaves out the jobs that build the app (pier slugbuild):
// they belong to pier builds, not to the app's processes.
func withoutBuilds(jobs []api.AppJob) []api.AppJob {
	out := jobs[:0:0]
	for _, j := range jobs {
		if !(j.OneOff && api.IsBuildCommand(j.Args)) {
			out = append(out, j)
		}
	}
	return out
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

func newKillCmd() *cobra.Command {
	cmd := appAction(&cobra.Command{
		Use:   "kill JOB",
		Short: "Stop a job; a service job is replaced, a one-off job is cancelled",
		Args:  cobra.ExactArgs(1),
	}, func(cmd *cobra.Command, c *client.Controller, app string, args []string) error {
		if err := c.KillJob(cmd.Context(), app, args[0]); err != nil {
			return err
		}
		fmt.Printf("Stopping %s\n", args[0])
		return nil
	})
	return cmd
}

func newResizeCmd() *cobra.Command {
	var noWait bool
	cmd := appAction(&cobra.Command{
		Use:   "resize TYPE=MEMORY[:CPU]...",
		Short: "Set the memory (512M, 2G) and CPU (millicores) each job of a process type gets: a new release",
		Args:  cobra.MinimumNArgs(1),
	}, func(cmd *cobra.Command, c *client.Controller, app string, args []string) error {
		sizes := map[string]api.Resources{}
		for _, a := range args {
			r, name, err := parseSize(a)
			if err != nil {
				return err
			}
			sizes[name] = r
		}
		res, err := c.Resize(cmd.Context(), app, sizes)
		if err != nil {
			return err
		}
		return announceRelease(cmd.Context(), c, res, noWait)
	})
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "return once the release is made, without waiting for its deployment")
	return cmd
}

// parseSize reads "web=512M", "web=2G:500" (memory, then CPU millicores).
func parseSize(s string) (api.Resources, string, error) {
	name, spec, ok := strings.Cut(s, "=")
	if !ok || name == "" || spec == "" {
		return api.Resources{}, "", fmt.Errorf("%q: want TYPE=MEMORY[:CPU], like web=512M:500", s)
	}
	mem, cpu, _ := strings.Cut(spec, ":")
	var r api.Resources
	if mem != "" {
		mult := int64(1)
		switch {
		case strings.HasSuffix(mem, "G"):
			mult, mem = 1024, strings.TrimSuffix(mem, "G")
		case strings.HasSuffix(mem, "M"):
			mem = strings.TrimSuffix(mem, "M")
		}
		n, err := strconv.ParseInt(mem, 10, 64)
		if err != nil || n <= 0 {
			return r, "", fmt.Errorf("%q: memory like 512M or 2G", s)
		}
		r.MemoryMB = n * mult
	}
	if cpu != "" {
		n, err := strconv.ParseInt(strings.TrimSuffix(cpu, "m"), 10, 64)
		if err != nil || n <= 0 {
			return r, "", fmt.Errorf("%q: CPU in millicores, like 500", s)
		}
		r.CPUMillis = n
	}
	return r, name, nil
}
