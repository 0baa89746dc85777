package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/client"
	"github.com/pierpaas/pier/runtime"
	"github.com/pierpaas/pier/store"
)

const (
	hostID      = "bench"
	jobMemoryMB = 64
	warmups     = 3
	// bareRoot is runc's state root for the bare runs, apart from the
	// agent's (/run/pier/runc): the agent's garbage collector deletes
	// containers it does not know from its own root.
	bareRoot = "/run/pier/bench-bare-runc"
)

// bench is one run of the benchmark and everything it must clean up.
type bench struct {
	o      options
	prefix string // of every job and container id of this run
	tmp    string
	// serverDir and hostDir are the data directories of the two daemons.
	serverDir, hostDir string
	server, host       *proc
	cl                 *client.Cluster
	tr                 *tracker
	rt, bareRt         *runtime.Runc

	mu   sync.Mutex
	jobs map[string]api.Job // written and not yet removed

	res results
}

// results holds what has been measured so far.
type results struct {
	start, bare, stop []time.Duration
	put, starting     []time.Duration
	started           []time.Duration
	idle, loaded      *memory // the agent's
	shims             []memory
	burstStart        time.Duration // memJobs put at once → all running
	burstStop         time.Duration // all desired shutdown → all ended
}

func newBench(o options) (*bench, error) {
	var r [3]byte
	rand.Read(r[:])
	tmp, err := os.MkdirTemp("", "pier-bench-host-")
	if err != nil {
		return nil, err
	}
	b := &bench{
		o: o, prefix: "bench-" + hex.EncodeToString(r[:]), tmp: tmp,
		serverDir: filepath.Join(tmp, "server"), hostDir: filepath.Join(tmp, "host"),
		jobs: map[string]api.Job{},
	}
	return b, nil
}

func (b *bench) jobsDir() string { return filepath.Join(b.hostDir, "jobs") }

// runAll starts a cluster per bench (one per network mode), measures job
// starts alternating between them, then each one's memory, and reports.
func runAll(ctx context.Context, benches []*bench) error {
	for _, b := range benches {
		if err := b.startCluster(ctx); err != nil {
			return fmt.Errorf("%s: %w", b.o.network, err)
		}
	}
	if err := measureStarts(ctx, benches, benches[0].o.jobs); err != nil {
		return err
	}
	var attach, detach []time.Duration
	for _, b := range benches {
		if b.o.network == "job" {
			progress("timing %d namespace attach and detach steps alone", benches[0].o.jobs)
			var err error
			if attach, detach, err = netnsStepsApart(ctx, benches[0].o.jobs); err != nil {
				return fmt.Errorf("namespace steps: %w", err)
			}
		}
	}
	for _, b := range benches {
		if err := b.measureMemory(ctx); err != nil {
			return fmt.Errorf("%s: %w", b.o.network, err)
		}
	}
	for _, b := range benches {
		b.report(os.Stdout)
	}
	if len(benches) > 1 {
		compare(os.Stdout, benches)
	}
	if len(attach) > 0 {
		fmt.Printf("a job's namespace alone (jobnet.Host, %d times, no job)  p50 ms    p90 ms    p99 ms   mean ms\n", len(attach))
		for _, r := range []struct {
			name string
			d    []time.Duration
		}{{"Attach (before a job starts)", attach}, {"Detach (after a job ends)", detach}} {
			s := summarize(r.d)
			fmt.Printf("%-52s %9.1f %9.1f %9.1f %9.1f\n", r.name, ms(s.p50), ms(s.p90), ms(s.p99), ms(s.mean))
		}
		fmt.Println()
	}
	return nil
}

// compare prints the job start figures of the network modes side by side.
func compare(w io.Writer, benches []*bench) {
	fmt.Fprintf(w, "job start, put → status running, the modes alternated in rounds of 10 (%d jobs each)\n", len(benches[0].res.start))
	fmt.Fprintf(w, "%-28s %9s %9s %9s %9s\n", "network", "p50 ms", "p90 ms", "p99 ms", "mean ms")
	for _, b := range benches {
		s := summarize(b.res.start)
		fmt.Fprintf(w, "%-28s %9.1f %9.1f %9.1f %9.1f\n", "--network "+b.o.network, ms(s.p50), ms(s.p90), ms(s.p99), ms(s.mean))
	}
	for _, b := range benches {
		s := summarize(b.res.bare)
		fmt.Fprintf(w, "%-28s %9.1f %9.1f %9.1f %9.1f\n", "bare runc ("+b.o.network+" rounds)", ms(s.p50), ms(s.p90), ms(s.p99), ms(s.mean))
	}
	a, z := summarize(benches[0].res.start), summarize(benches[1].res.start)
	fmt.Fprintf(w, "%-28s %+9.1f %+9.1f %+9.1f %+9.1f\n", benches[0].o.network+" − "+benches[1].o.network, ms(a.p50-z.p50), ms(a.p90-z.p90), ms(a.p99-z.p99), ms(a.mean-z.mean))
	fmt.Fprintln(w)
}

// startCluster starts a server and a host agent joined to it, and waits
// until the agent has registered.
func (b *bench) startCluster(ctx context.Context) error {
	ports, err := freePorts(5)
	if err != nil {
		return err
	}
	etcdPort, peerPort, apiPort, dnsPort, hostAPIPort := ports[0], ports[1], ports[2], ports[3], ports[4]
	progress("%s: starting pier server (etcd %d, api %d)", b.o.network, etcdPort, apiPort)
	b.server, err = startProc("server", filepath.Join(b.tmp, "server.log"), b.o.pier, "server",
		"--data-dir", b.serverDir, "--name", "bench-server", "--git-ssh-port", "0",
		"--etcd-client-port", strconv.Itoa(etcdPort), "--etcd-peer-port", strconv.Itoa(peerPort),
		"--api-port", strconv.Itoa(apiPort), "--dns-port", strconv.Itoa(dnsPort))
	if err != nil {
		return err
	}
	if err := waitReady(ctx, b.server, apiPort, time.Minute); err != nil {
		return err
	}
	tok, err := exec.CommandContext(ctx, b.o.pier, "token", "--data-dir", b.serverDir).Output()
	if err != nil {
		return fmt.Errorf("pier token: %w", err)
	}
	progress("%s: starting pier host --id %s --network %s", b.o.network, hostID, b.o.network)
	b.host, err = startProc("host", filepath.Join(b.tmp, "host.log"), b.o.pier, "host",
		"--join", "127.0.0.1:"+strconv.Itoa(apiPort), "--token", strings.TrimSpace(string(tok)),
		"--data-dir", b.hostDir, "--host-api-port", strconv.Itoa(hostAPIPort), "--id", hostID, "--network", b.o.network)
	if err != nil {
		return err
	}
	b.cl, err = client.Connect(client.Config{
		Endpoints:      []string{"https://127.0.0.1:" + strconv.Itoa(etcdPort)},
		CredentialsDir: filepath.Join(b.serverDir, "pki"),
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		return err
	}
	if b.tr, err = watchStatuses(ctx, b.cl.Etcd); err != nil {
		return err
	}
	b.tr.check = func() error { return errors.Join(b.host.exited(), b.server.exited()) }
	hostKey, _ := store.Key(store.HostsPrefix, hostID)
	deadline := time.Now().Add(time.Minute)
	for {
		gctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, _, err := store.Get[api.Host](gctx, b.cl.Etcd, hostKey)
		cancel()
		if err == nil {
			break
		}
		if !errors.Is(err, store.ErrNotFound) && ctx.Err() == nil {
			return err
		}
		if err := b.host.exited(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("host %s not registered after a minute (log: %s)", hostID, b.host.logPath)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	if b.rt, err = runtime.NewRunc(runtime.RuncOptions{StateDir: filepath.Join(b.hostDir, "runtime"), Log: quiet}); err != nil {
		return err
	}
	if b.bareRt, err = runtime.NewRunc(runtime.RuncOptions{StateDir: filepath.Join(b.tmp, "bare"), Root: bareRoot, Log: quiet}); err != nil {
		return err
	}
	time.Sleep(time.Second) // let the fresh agent settle before its idle memory is read
	m, err := readMemory(b.host.pid())
	if err != nil {
		return err
	}
	b.res.idle = &m
	return nil
}

// warmUp starts and stops a few jobs and bare runs, not counted.
func (b *bench) warmUp(ctx context.Context) error {
	progress("%s: warming up: %d jobs and %d bare runs, not counted", b.o.network, warmups, warmups)
	for i := range warmups {
		if _, _, err := b.startStop(ctx, fmt.Sprintf("%s-w%d", b.prefix, i)); err != nil {
			return err
		}
	}
	if _, err := b.bareRt.BareRun(ctx, b.bareSpec(), warmups); err != nil {
		return fmt.Errorf("bare runc run: %w", err)
	}
	return nil
}

func (b *bench) bareSpec() runtime.Spec {
	return runtime.Spec{
		ID:     b.prefix + "-bare",
		Args:   []string{"true"},
		Env:    []string{"PIER_HOST_ID=" + hostID, "PIER_JOB_ID=" + b.prefix + "-bare"},
		Limits: runtime.Limits{MemoryMB: jobMemoryMB},
	}
}

// startRound starts and stops n jobs one after another (numbered from
// done), then times n bare runc runs, so that both see the same machine.
func (b *bench) startRound(ctx context.Context, done, n int) error {
	for i := range n {
		s, stop, err := b.startStop(ctx, fmt.Sprintf("%s-l%d", b.prefix, done+i))
		if err != nil {
			return err
		}
		b.res.start = append(b.res.start, s.total)
		b.res.put = append(b.res.put, s.put)
		b.res.starting = append(b.res.starting, s.starting)
		b.res.started = append(b.res.started, s.started)
		b.res.stop = append(b.res.stop, stop)
	}
	times, err := b.bareRt.BareRun(ctx, b.bareSpec(), n)
	if err != nil {
		return fmt.Errorf("bare runc run: %w", err)
	}
	b.res.bare = append(b.res.bare, times...)
	return nil
}

// measureStarts times sequential job starts on every bench, in rounds of
// ten that alternate between them (and, within each, with ten bare runc
// runs), so that all see the same machine.
func measureStarts(ctx context.Context, benches []*bench, jobs int) error {
	for _, b := range benches {
		if err := b.warmUp(ctx); err != nil {
			return fmt.Errorf("%s: %w", b.o.network, err)
		}
	}
	progress("starting %d jobs one after another per network mode, each stopped once running", jobs)
	for done := 0; done < jobs; {
		n := min(10, jobs-done)
		for _, b := range benches {
			if err := b.startRound(ctx, done, n); err != nil {
				return fmt.Errorf("%s: %w", b.o.network, err)
			}
		}
		done += n
		if done%50 == 0 || done == jobs {
			progress("  %d/%d", done, jobs)
		}
	}
	return nil
}

func (b *bench) startStop(ctx context.Context, id string) (startSample, time.Duration, error) {
	s, err := b.startJob(ctx, id)
	if err != nil {
		return s, 0, err
	}
	stop, err := b.stopAndRemove(ctx, id)
	return s, stop, err
}

// measureMemory puts memJobs jobs at once, reads the agent's and the
// shims' memory once all run, then stops them all at once.
func (b *bench) measureMemory(ctx context.Context) error {
	n := b.o.memJobs
	progress("%s: starting %d jobs at once for the memory figures", b.o.network, n)
	ids := make([]string, n)
	chans := make([]<-chan event, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-m%d", b.prefix, i)
		chans[i] = b.tr.expect(ids[i])
	}
	defer func() {
		for _, id := range ids {
			b.tr.forget(id)
		}
	}()
	t0 := time.Now()
	for _, id := range ids {
		if err := b.putJob(ctx, newJob(id)); err != nil {
			return err
		}
	}
	var last time.Time
	for i, id := range ids {
		ev, err := b.tr.waitState(ctx, chans[i], id, isRunning, 2*time.Minute)
		if err != nil {
			return err
		}
		if ev.at.After(last) {
			last = ev.at
		}
	}
	b.res.burstStart = last.Sub(t0)
	// Let the shims and the agent reach their steady state (the shims'
	// first status polls, the agent's watches) before reading memory.
	time.Sleep(3 * time.Second)
	m, err := readMemory(b.host.pid())
	if err != nil {
		return err
	}
	b.res.loaded = &m
	pids := shimPIDs(b.jobsDir())
	for _, pid := range pids {
		if m, err := readMemory(pid); err == nil {
			b.res.shims = append(b.res.shims, m)
		}
	}
	if len(b.res.shims) != n {
		return fmt.Errorf("found %d shims for %d running jobs", len(b.res.shims), n)
	}

	progress("%s: stopping the %d jobs at once", b.o.network, n)
	t0 = time.Now()
	for _, id := range ids {
		if err := b.stopJob(ctx, id); err != nil {
			return err
		}
	}
	last = time.Time{}
	for i, id := range ids {
		ev, err := b.tr.waitState(ctx, chans[i], id, isTerminal, 2*time.Minute)
		if err != nil {
			return err
		}
		if ev.st.State != api.JobShutdown {
			return fmt.Errorf("job %s ended %s, want shutdown: %s", id, ev.st.State, ev.st.Error)
		}
		if ev.at.After(last) {
			last = ev.at
		}
	}
	b.res.burstStop = last.Sub(t0)
	for _, id := range ids {
		if err := b.removeJob(ctx, id); err != nil {
			return err
		}
	}
	return nil
}

// report prints the figures as a table.
func (b *bench) report(w io.Writer) {
	r := &b.res
	runcVersion, _ := exec.Command("runc", "--version").Output()
	fmt.Fprintf(w, "\npier host agent benchmark, --network %s: %d jobs one after another, %d at once; %s\n",
		b.o.network, len(r.start), len(r.shims), firstLine(string(runcVersion)))
	fmt.Fprintf(w, "\n%-46s %9s %9s %9s %9s\n", "job start latency", "p50 ms", "p90 ms", "p99 ms", "mean ms")
	row := func(name string, d []time.Duration) {
		s := summarize(d)
		fmt.Fprintf(w, "%-46s %9.1f %9.1f %9.1f %9.1f\n", name, ms(s.p50), ms(s.p90), ms(s.p99), ms(s.mean))
	}
	row("pier: job put → status running (watch)", r.start)
	row("  of which: put → status starting", r.starting)
	row("  of which: put → process started (shim)", r.started)
	row("  of which: the put itself", r.put)
	row("bare `runc run` of `true`, same bundle prep", r.bare)
	p, bb := summarize(r.start), summarize(r.bare)
	fmt.Fprintf(w, "%-46s %9.2f %9.2f %9.2f %9.2f\n", "ratio pier / bare",
		ratio(p.p50, bb.p50), ratio(p.p90, bb.p90), ratio(p.p99, bb.p99), ratio(p.mean, bb.mean))
	row("stop: desired shutdown put → status shutdown", r.stop)

	fmt.Fprintf(w, "\n%-46s %9s %9s %9s\n", fmt.Sprintf("memory (MiB), %d jobs running", len(r.shims)), "min", "median", "max")
	if r.idle != nil && r.loaded != nil {
		fmt.Fprintf(w, "%-46s %9.1f   (RssAnon %.1f, Pss %.1f)\n", "agent (pier host) VmRSS, no jobs",
			mib(r.idle.RSS), mib(r.idle.Anon), mib(r.idle.PSS))
		fmt.Fprintf(w, "%-46s %9.1f   (RssAnon %.1f, Pss %.1f, peak VmHWM %.1f)\n", fmt.Sprintf("agent (pier host) VmRSS, %d jobs", len(r.shims)),
			mib(r.loaded.RSS), mib(r.loaded.Anon), mib(r.loaded.PSS), mib(r.loaded.HWM))
	}
	if len(r.shims) > 0 {
		spread := func(name string, get func(memory) int64) int64 {
			v := make([]int64, len(r.shims))
			var total int64
			for i, m := range r.shims {
				v[i] = get(m)
				total += v[i]
			}
			slices.Sort(v)
			fmt.Fprintf(w, "%-46s %9.1f %9.1f %9.1f\n", name, mib(v[0]), mib(v[len(v)/2]), mib(v[len(v)-1]))
			return total
		}
		rss := spread(fmt.Sprintf("shim (pier shim) VmRSS, %d shims", len(r.shims)), func(m memory) int64 { return m.RSS })
		spread("  of which RssAnon (private to the shim)", func(m memory) int64 { return m.Anon })
		pss := spread("shim Pss (shared pages divided among sharers)", func(m memory) int64 { return m.PSS })
		fmt.Fprintf(w, "%-46s %9.1f   (VmRSS summed: %.1f)\n", "all shims together, Pss", mib(pss), mib(rss))
	}
	fmt.Fprintf(w, "\n%d jobs put at once: all running after %.2f s; all shut down %.2f s after their desired shutdown\n\n",
		len(r.shims), r.burstStart.Seconds(), r.burstStop.Seconds())
}

func (b *bench) printLogTails() {
	for _, p := range []*proc{b.server, b.host} {
		if p != nil {
			fmt.Fprintf(os.Stderr, "--- last lines of pier %s, --network %s (%s)\n%s\n", p.name, b.o.network, p.logPath, p.tail(20))
		}
	}
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}
