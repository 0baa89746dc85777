package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/client"
	"github.com/pierpaas/pier/host/agent"
	"github.com/pierpaas/pier/internal/pki"
)

// The admin commands under `pier host` talk to one host agent's API, as
// flynn-host does: ps, run, stop, signal, logs, status.

// hostAdminFlags locate the agent and the credentials to reach it with.
type hostAdminFlags struct {
	addr    string
	dataDir string
}

func (f *hostAdminFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	addr := os.Getenv("PIER_HOST_ADDR")
	if addr == "" {
		addr = "127.0.0.1:" + strconv.Itoa(agent.DefaultAPIPort)
	}
	fl.StringVar(&f.addr, "host-addr", addr, "address (IP:port) of the host agent's API (env PIER_HOST_ADDR)")
	fl.StringVar(&f.dataDir, "data-dir", filepath.Join(defaultDataDir(), "host"),
		"data directory whose pki/ holds cluster credentials: the host's, or pier up's or a server's (its host/pki or pki)")
}

// credentialsDir finds credentials in the data directory: a host's (or a
// server's) pki/, or the host/pki/ of a pier up data directory.
func (f *hostAdminFlags) credentialsDir() (string, error) {
	for _, d := range []string{filepath.Join(f.dataDir, "pki"), filepath.Join(f.dataDir, "host", "pki")} {
		if pki.HasCredentials(d) {
			return d, nil
		}
	}
	return "", fmt.Errorf("no cluster credentials in %s/pki: pass --data-dir of this host (or of pier up)", f.dataDir)
}

func (f *hostAdminFlags) client() (*client.HostClient, error) {
	dir, err := f.credentialsDir()
	if err != nil {
		return nil, err
	}
	return client.NewHostClient(f.addr, dir)
}

// hostErr makes an API error read well on a terminal.
func hostErr(f *hostAdminFlags, err error) error {
	var apiErr *api.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &apiErr):
		return errors.New(apiErr.Message)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("no host agent at %s (is pier host running? see --host-addr)", f.addr)
	}
	return err
}

func newHostAdminCmds() []*cobra.Command {
	return []*cobra.Command{newHostPsCmd(), newHostRunCmd(), newHostStopCmd(), newHostSignalCmd(), newHostLogsCmd(), newHostStatusCmd()}
}

// adminCmd builds a command whose body gets a connected client.
func adminCmd(cmd *cobra.Command, run func(ctx context.Context, c *client.HostClient, f *hostAdminFlags, args []string) error) *cobra.Command {
	var f hostAdminFlags
	f.register(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := f.client()
		if err != nil {
			return err
		}
		defer c.Close()
		return hostErr(&f, run(cmd.Context(), c, &f, args))
	}
	return cmd
}

func newHostPsCmd() *cobra.Command {
	var asJSON bool
	cmd := adminCmd(&cobra.Command{
		Use:   "ps",
		Short: "List the jobs on this host",
		Args:  cobra.NoArgs,
	}, func(ctx context.Context, c *client.HostClient, _ *hostAdminFlags, _ []string) error {
		jobs, err := c.Jobs(ctx)
		if err != nil {
			return err
		}
		if asJSON {
			return printJSON(os.Stdout, jobs)
		}
		tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSTATE\tPID\tPORTS\tCREATED\tCOMMAND")
		for _, hj := range jobs {
			state, pid, ports := "assigned", "-", "-"
			if st := hj.Status; st != nil {
				state = string(st.State)
				if st.Error != "" {
					state += " (" + st.Error + ")"
				}
				if st.PID != 0 {
					pid = strconv.Itoa(st.PID)
				}
				if len(st.HostPorts) > 0 {
					ports = joinInts(st.HostPorts)
				}
			}
			if !hj.Assigned {
				state += ", removed"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", hj.Job.ID, state, pid, ports, ago(hj.Job.CreatedAt), shorten(strings.Join(hj.Job.Args, " "), 50))
		}
		return tw.Flush()
	})
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the jobs as JSON")
	return cmd
}

func newHostRunCmd() *cobra.Command {
	var (
		memory, cpu         int64
		env                 []string
		detach, interactive bool
		tty                 bool
	)
	var cmd *cobra.Command
	cmd = adminCmd(&cobra.Command{
		Use:   "run [flags] -- CMD [ARG...]",
		Short: "Run a command as a job on this host and follow its output",
		Long: `Run a command as an ad-hoc job on this host. The job's id goes to stderr,
its output to stdout and stderr as it comes, and pier exits with the job's
exit code. Ctrl-C stops the job (SIGTERM, then SIGKILL).

When stdin and stdout are terminals the job gets a terminal of its own, and
pier attaches to it: the local terminal is in raw mode (keys, Ctrl-C
included, go to the job), the job's terminal follows the local window's
size, and both are one until the job ends. With -i the job reads pier's
stdin without a terminal, as in "echo hello | pier host run -i -- cat".`,
		Args: cobra.MinimumNArgs(1),
	}, func(ctx context.Context, c *client.HostClient, _ *hostAdminFlags, args []string) error {
		req := api.RunJobRequest{Args: args, MemoryMB: memory, CPUMillis: cpu}
		if len(env) > 0 {
			req.Env = map[string]string{}
		}
		for _, e := range env {
			k, v, ok := strings.Cut(e, "=")
			if !ok || k == "" {
				return fmt.Errorf("-e %q: want KEY=VALUE", e)
			}
			req.Env[k] = v
		}
		stdinTerm := term.IsTerminal(int(os.Stdin.Fd()))
		useTTY := stdinTerm && term.IsTerminal(int(os.Stdout.Fd())) && !detach
		if cmd.Flags().Changed("tty") {
			useTTY = tty
			if tty && !stdinTerm {
				return errors.New("--tty: stdin is not a terminal")
			}
		}
		if detach && (interactive || useTTY) {
			return errors.New("-d cannot be combined with -i or --tty: nobody would be attached")
		}
		if useTTY || interactive {
			return runAttached(ctx, hostTarget{c, req}, useTTY)
		}
		job, err := c.Run(ctx, req)
		if err != nil {
			return err
		}
		if detach {
			fmt.Println(job.ID)
			return nil
		}
		fmt.Fprintln(os.Stderr, job.ID)
		return followRun(ctx, c, job.ID)
	})
	fl := cmd.Flags()
	fl.SetInterspersed(false) // flags after CMD are the command's
	fl.Int64Var(&memory, "memory", 0, "memory limit in MB")
	fl.Int64Var(&cpu, "cpu", 0, "CPU limit in millicores")
	fl.StringArrayVarP(&env, "env", "e", nil, "environment variable KEY=VALUE (repeatable)")
	fl.BoolVarP(&detach, "detach", "d", false, "print the job's id and return at once")
	fl.BoolVarP(&interactive, "interactive", "i", false, "attach stdin: the job reads what pier reads")
	fl.BoolVarP(&tty, "tty", "t", false, "give the job a terminal (default: when stdin and stdout are terminals)")
	return cmd
}

// followRun streams a job's output until it ends, resuming if the stream
// breaks (an agent restart), and returns the job's exit as an exitError.
// An interrupt (ctx ends) stops the job; its output is still followed to
// the end, and a second interrupt leaves at once.
func followRun(ctx context.Context, c *client.HostClient, id string) error {
	bg := context.Background()
	finished := make(chan struct{})
	defer close(finished)
	var interrupted atomic.Bool
	go func() {
		select {
		case <-ctx.Done():
			interrupted.Store(true)
			signal.Reset(os.Interrupt, syscall.SIGTERM)
			fmt.Fprintf(os.Stderr, "pier: stopping %s (interrupt again to leave it)\n", id)
			sctx, cancel := context.WithTimeout(bg, 10*time.Second)
			defer cancel()
			if _, err := c.Stop(sctx, id); err != nil {
				fmt.Fprintln(os.Stderr, "pier: stop:", err)
			}
		case <-finished:
		}
	}()
	var next uint64
	failing := time.Time{}
	for {
		err := c.LogsFrom(bg, id, next, true, func(l api.LogLine) error {
			printLine(l)
			next = l.Seq + 1
			return nil
		})
		if err == nil {
			hj, jerr := c.Job(bg, id)
			if jerr == nil && hj.Status != nil && hj.Status.State.Terminal() {
				break
			}
			var apiErr *api.Error
			if errors.As(jerr, &apiErr) && apiErr.Status == 404 {
				return fmt.Errorf("job %s vanished from the host", id)
			}
			// The stream ended but the job did not: its agent stopped
			// serving, or the job's output is done and its status lags.
		}
		if err != nil {
			var apiErr *api.Error
			if errors.As(err, &apiErr) && apiErr.Status < 500 {
				return err
			}
			if failing.IsZero() {
				failing = time.Now()
			} else if time.Since(failing) > time.Minute {
				return fmt.Errorf("lost the job's output stream: %w", err)
			}
		} else {
			failing = time.Time{}
		}
		time.Sleep(200 * time.Millisecond)
	}
	wctx, cancel := context.WithTimeout(bg, 30*time.Second)
	defer cancel()
	hj, err := c.WaitJob(wctx, id)
	if err != nil {
		return fmt.Errorf("job %s: no final status: %w", id, err)
	}
	return jobExit(hj.Status, interrupted.Load())
}

// jobExit turns a job's terminal status into pier's exit: the job's own
// exit code, or 130 for a job stopped at the user's interrupt.
func jobExit(st *api.JobStatus, interrupted bool) error {
	switch {
	case st.State == api.JobComplete:
		return nil
	case st.State == api.JobShutdown && interrupted:
		return exitError{130}
	case st.State == api.JobShutdown:
		fmt.Fprintf(os.Stderr, "pier: job %s was stopped\n", st.ID)
		if st.ExitCode != nil && *st.ExitCode > 0 && *st.ExitCode <= 255 {
			return exitError{*st.ExitCode}
		}
		return exitError{1}
	case st.ExitCode != nil:
		code := *st.ExitCode
		if code <= 0 || code > 255 {
			code = 1
		}
		if st.Error != "" && !strings.HasPrefix(st.Error, "exit status") {
			fmt.Fprintf(os.Stderr, "pier: job %s: %s\n", st.ID, st.Error)
		}
		return exitError{code}
	}
	if st.Error != "" {
		return fmt.Errorf("job %s %s: %s", st.ID, st.State, st.Error)
	}
	return fmt.Errorf("job %s %s", st.ID, st.State)
}

func printLine(l api.LogLine) {
	if l.Gap > 0 {
		fmt.Fprintf(os.Stderr, "pier: %d lines of output lost here\n", l.Gap)
	}
	w := os.Stdout
	if l.Stream == "stderr" {
		w = os.Stderr
	}
	fmt.Fprintln(w, l.Text)
}

func newHostStopCmd() *cobra.Command {
	var timeout time.Duration
	cmd := adminCmd(&cobra.Command{
		Use:   "stop JOB...",
		Short: "Stop jobs on this host (SIGTERM, then SIGKILL after their grace period)",
		Long: `Stop jobs on this host and wait until they have stopped. The job's record is
left alone: a scheduler that wants the job running places a new one.`,
		Args: cobra.MinimumNArgs(1),
	}, func(ctx context.Context, c *client.HostClient, _ *hostAdminFlags, args []string) error {
		for _, id := range args {
			if _, err := c.Stop(ctx, id); err != nil {
				return err
			}
		}
		wctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		for _, id := range args {
			hj, err := c.WaitJob(wctx, id)
			if err != nil {
				return fmt.Errorf("job %s did not stop: %w", id, err)
			}
			fmt.Printf("%s %s\n", id, hj.Status.State)
		}
		return nil
	})
	cmd.Flags().DurationVar(&timeout, "timeout", time.Minute, "how long to wait for the jobs to stop")
	return cmd
}

func newHostSignalCmd() *cobra.Command {
	return adminCmd(&cobra.Command{
		Use:   "signal JOB SIGNAL",
		Short: "Send a signal (a number, or a name such as TERM or SIGHUP) to a job's main process",
		Args:  cobra.ExactArgs(2),
	}, func(ctx context.Context, c *client.HostClient, _ *hostAdminFlags, args []string) error {
		sig, err := parseSignal(args[1])
		if err != nil {
			return err
		}
		return c.Signal(ctx, args[0], sig)
	})
}

func parseSignal(s string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil && n > 0 && n <= 64 {
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("unknown signal %q", s)
}

func newHostLogsCmd() *cobra.Command {
	var (
		follow bool
		lines  int
		asJSON bool
	)
	cmd := adminCmd(&cobra.Command{
		Use:   "logs [-f] [-n N] JOB",
		Short: "Print a job's output (stdout to stdout, stderr to stderr)",
		Args:  cobra.ExactArgs(1),
	}, func(ctx context.Context, c *client.HostClient, _ *hostAdminFlags, args []string) error {
		enc := json.NewEncoder(os.Stdout)
		err := c.Logs(ctx, args[0], follow, lines, func(l api.LogLine) error {
			if asJSON {
				return enc.Encode(l)
			}
			printLine(l)
			return nil
		})
		if ctx.Err() != nil {
			return nil // interrupted while following: the normal way out
		}
		return err
	})
	fl := cmd.Flags()
	fl.BoolVarP(&follow, "follow", "f", false, "keep printing new output until the job ends")
	fl.IntVarP(&lines, "lines", "n", -1, "print only the last N lines (default: all)")
	fl.BoolVar(&asJSON, "json", false, "print lines as JSON with their sequence numbers, times and streams")
	return cmd
}

func newHostStatusCmd() *cobra.Command {
	var asJSON bool
	cmd := adminCmd(&cobra.Command{
		Use:   "status",
		Short: "Describe this host's agent",
		Args:  cobra.NoArgs,
	}, func(ctx context.Context, c *client.HostClient, _ *hostAdminFlags, _ []string) error {
		st, err := c.Status(ctx)
		if err != nil {
			return err
		}
		if asJSON {
			return printJSON(os.Stdout, st)
		}
		tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "host\t%s\n", st.ID)
		fmt.Fprintf(tw, "address\t%s (API %s)\n", st.Addr, st.APIAddr)
		fmt.Fprintf(tw, "runtime\t%s\n", st.Runtime)
		fmt.Fprintf(tw, "version\t%s\n", st.Version)
		fmt.Fprintf(tw, "uptime\t%s\n", time.Duration(st.Uptime))
		fmt.Fprintf(tw, "cpu\t%d of %d millicores in use\n", st.UsedCPUMillis, st.CPUMillis)
		fmt.Fprintf(tw, "memory\t%d of %d MB in use\n", st.UsedMemoryMB, st.MemoryMB)
		fmt.Fprintf(tw, "jobs\t%d running, %d known\n", st.Supervised, st.Jobs)
		if len(st.Tags) > 0 {
			var tags []string
			for k, v := range st.Tags {
				tags = append(tags, k+"="+v)
			}
			fmt.Fprintf(tw, "tags\t%s\n", strings.Join(tags, " "))
		}
		return tw.Flush()
	})
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON")
	return cmd
}

func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return time.Since(t).Round(time.Second).String() + " ago"
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}
