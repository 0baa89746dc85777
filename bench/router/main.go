// Command router benchmarks the pier router against nginx and HAProxy in
// one run, on the same machine, backends and load. It starts N Go HTTP
// backends answering a small fixed body, an embedded etcd member with
// mutual TLS, registers the backends in discovery as instances of one
// service and stores a route from bench.local to it, then:
//
//   - runs the pier router (router.Start) in a child process of its own
//     (this program re-executed), so that its memory and CPU are not mixed
//     with etcd's and the backends', which stay in this process;
//   - runs nginx and HAProxy from generated configurations in a temporary
//     directory, in the foreground, proxying to the same backends with
//     keep-alive to them;
//   - drives each with the same wrk command (and, as a ceiling, one backend
//     directly), in rounds that alternate between them, and prints a
//     markdown table of requests per second, p50 and p99 latency, errors
//     and the proxy's peak resident memory, with the ratios of the pier
//     router to nginx and to HAProxy;
//   - measures how long an instance takes, from its registration, to get
//     its first request through the router, and how long after its
//     removal the router stops sending it requests.
//
// It needs nginx, haproxy and wrk (`SETUP_BENCH=1 scripts/setup`, which
// `make bench` does, installs Debian's packages), and root only for that.
// From the repository root:
//
//	go run ./bench/router
//	go run ./bench/router -runs 5 -duration 30s -conns 256 -only pier,nginx
//	go run ./bench/router -baseline /tmp/bench-before  # an older build's router beside this one
//
// It takes about two and a half minutes with the defaults. Every child
// process (the router, nginx and its workers, HAProxy, wrk) is stopped and
// the temporary directory removed on success, failure or Ctrl-C; the exit
// status is non-zero if anything failed or was left behind. If the
// benchmark is killed outright, the children die with it: the router and
// nginx's reaper see their stdin close, HAProxy and wrk get Pdeathsig.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

type options struct {
	backends   int
	wrk        wrkOptions
	warmup     time.Duration
	runs       int
	only       []string
	regSamples int
	cpuProfile string
	// baseline is another build of this benchmark whose router runs as the
	// "pier-base" path: an earlier router measured beside the current one
	// in the same run.
	baseline string
	// backendNetns puts the backends in a job's network namespace, on a
	// job address behind a veth and the job network's policy (package
	// jobnet), instead of on the host's loopback.
	backendNetns bool
}

// paths, in the order they are run and printed.
var allPaths = []string{"direct", "pier", "pier-base", "nginx", "haproxy"}

var pathNames = map[string]string{
	"direct":    "direct to one backend (ceiling)",
	"pier":      "pier router",
	"pier-base": "pier router (baseline build)",
	"nginx":     "nginx",
	"haproxy":   "HAProxy",
}

func main() {
	if os.Getenv(childEnv) != "" {
		os.Exit(routerChild())
	}
	if os.Getenv(reaperEnv) != "" {
		os.Exit(reaper(os.Args[1:]))
	}
	var o options
	var only string
	flag.IntVar(&o.backends, "backends", 4, "backend servers behind every proxy")
	flag.BoolVar(&o.backendNetns, "backend-netns", false, "run the backends in a job's network namespace, on a job address (as jobs run), instead of on loopback")
	flag.IntVar(&o.wrk.threads, "threads", 2, "wrk threads (-t)")
	flag.IntVar(&o.wrk.conns, "conns", 64, "wrk connections (-c)")
	flag.DurationVar(&o.wrk.duration, "duration", 10*time.Second, "wrk duration of each measured run (-d, whole seconds)")
	flag.DurationVar(&o.warmup, "warmup", 3*time.Second, "uncounted wrk run before each measured one (0: none)")
	flag.IntVar(&o.runs, "runs", 3, "rounds over all paths; each path's median run (by req/s) is reported")
	flag.StringVar(&only, "only", strings.Join(allPaths, ","), "paths to measure, of "+strings.Join(allPaths, ","))
	flag.StringVar(&o.cpuProfile, "router-cpuprofile", "", "write a CPU profile of the router process to this file")
	flag.IntVar(&o.regSamples, "reg-samples", 100, "instances registered and removed to time the router's reaction (0: skip)")
	flag.StringVar(&o.baseline, "baseline", "", "another build of this benchmark (go build -o FILE ./bench/router) whose router is measured beside this one as the pier-base path")
	flag.Parse()
	o.wrk.host = benchDomain
	if o.baseline == "" {
		only = strings.ReplaceAll(only, "pier-base", "")
	} else if !strings.Contains(only, "pier-base") {
		only += ",pier-base"
	}
	for _, p := range strings.Split(only, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		if !slices.Contains(allPaths, p) {
			fatalf("-only: unknown path %q (want some of %s)", p, strings.Join(allPaths, ","))
		}
		if !slices.Contains(o.only, p) {
			o.only = append(o.only, p)
		}
	}
	if o.backends < 1 || o.runs < 1 || o.wrk.threads < 1 || o.wrk.conns < o.wrk.threads || o.wrk.duration < time.Second {
		fatalf("need -backends ≥ 1, -runs ≥ 1, -threads ≥ 1, -conns ≥ -threads and -duration ≥ 1s")
	}
	os.Exit(run(o))
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench/router: "+format+"\n", args...)
	os.Exit(2)
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// run performs the benchmark and the cleanup, and returns the exit status.
func run(o options) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		n := 0
		for s := range sigs {
			if n++; n == 1 {
				fmt.Fprintf(os.Stderr, "\n%s: stopping; cleaning up\n", s)
				cancel()
				continue
			}
			// Insistence: stop the children now and go.
			stopAll()
			os.Exit(130)
		}
	}()

	tmp, err := os.MkdirTemp("", "pier-bench-router-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/router:", err)
		return 1
	}
	status := 0
	var closers []func()
	func() {
		defer func() {
			if r := recover(); r != nil {
				fmt.Fprintln(os.Stderr, "bench/router: panic:", r)
				status = 1
			}
		}()
		if err := bench(ctx, o, tmp, &closers); err != nil {
			if ctx.Err() != nil && errors.Is(err, context.Canceled) {
				fmt.Fprintln(os.Stderr, "bench/router: interrupted")
			} else {
				fmt.Fprintln(os.Stderr, "bench/router:", err)
			}
			status = 1
		}
	}()

	left := stopAll()
	for _, c := range slices.Backward(closers) {
		c()
	}
	if err := os.RemoveAll(tmp); err != nil {
		left = append(left, fmt.Sprintf("%s: %v", tmp, err))
	}
	if len(left) > 0 {
		fmt.Fprintln(os.Stderr, "bench/router: cleanup: left behind:", strings.Join(left, ", "))
		return 1
	}
	progress("cleanup: every child process stopped, %s removed", tmp)
	return status
}

// target is one path the load goes through.
type target struct {
	key  string
	addr string
	proc *proc // nil for the direct path: the backends live in this process
}

func bench(ctx context.Context, o options, tmp string, closers *[]func()) error {
	wrkBin, err := lookTool("wrk")
	if err != nil {
		return err
	}
	want := func(k string) bool { return slices.Contains(o.only, k) }
	for _, k := range []string{"nginx", "haproxy"} {
		if want(k) {
			if _, err := lookTool(k); err != nil {
				return err
			}
		}
	}

	progress("starting %d backends and etcd", o.backends)
	listen := loopbackListener
	if o.backendNetns {
		l, closeNet, err := jobListener(tmp)
		if err != nil {
			return err
		}
		*closers = append(*closers, closeNet)
		listen = l
	}
	bs, err := startBackendsOn(o.backends, nil, listen)
	if err != nil {
		return err
	}
	*closers = append(*closers, bs.close)
	m, err := startEtcd(ctx, filepath.Join(tmp, "etcd"))
	if err != nil {
		return fmt.Errorf("etcd: %w", err)
	}
	*closers = append(*closers, m.close)
	reg := newRegistry(m)
	for i, a := range bs.addrs {
		g, err := reg.Register(ctx, benchService, instance(fmt.Sprintf("b%d", i), a))
		if err != nil {
			return fmt.Errorf("register backend: %w", err)
		}
		*closers = append(*closers, func() { g.Close() })
	}
	if err := putRoute(ctx, m.cli, "bench", benchDomain, benchService); err != nil {
		return err
	}
	if err := putRoute(ctx, m.cli, "late", lateDomain, lateService); err != nil {
		return err
	}

	var targets []target
	if want("direct") {
		targets = append(targets, target{key: "direct", addr: bs.addrs[0]})
	}
	var routerProc *proc
	var routerAddr string
	var routerIdle int64
	if want("pier") || o.regSamples > 0 {
		progress("starting the pier router (a child process)")
		p, addr, err := startRouterChild(ctx, "", filepath.Join(tmp, "router.log"), m.endpoint, m.credsDir, o.cpuProfile)
		if err != nil {
			return err
		}
		if err := waitServing(ctx, addr, benchDomain, 20*time.Second); err != nil {
			return fmt.Errorf("pier router: %v\n%s", err, p.tail(20))
		}
		routerProc, routerAddr, routerIdle = p, addr, groupRSS(p.pid())
		if want("pier") {
			targets = append(targets, target{key: "pier", addr: addr, proc: p})
		}
	}
	if want("pier-base") {
		progress("starting the baseline pier router (%s)", o.baseline)
		p, addr, err := startRouterChild(ctx, o.baseline, filepath.Join(tmp, "router-base.log"), m.endpoint, m.credsDir, "")
		if err != nil {
			return err
		}
		if err := waitServing(ctx, addr, benchDomain, 20*time.Second); err != nil {
			return fmt.Errorf("baseline pier router: %v\n%s", err, p.tail(20))
		}
		targets = append(targets, target{key: "pier-base", addr: addr, proc: p})
	}
	if want("nginx") {
		progress("starting nginx")
		addr := freeAddr()
		p, err := startNginx(ctx, filepath.Join(tmp, "nginx"), addr, bs.addrs)
		if err != nil {
			return err
		}
		targets = append(targets, target{key: "nginx", addr: addr, proc: p})
	}
	if want("haproxy") {
		progress("starting HAProxy")
		addr := freeAddr()
		p, err := startHAProxy(ctx, filepath.Join(tmp, "haproxy"), addr, bs.addrs)
		if err != nil {
			return err
		}
		targets = append(targets, target{key: "haproxy", addr: addr, proc: p})
	}

	results := make(map[string][]wrkResult)
	peaks := make(map[string]int64)
	for round := range o.runs {
		for _, t := range targets {
			if o.warmup > 0 {
				progress("round %d/%d: %s: warm-up %s", round+1, o.runs, pathNames[t.key], o.warmup)
				wo := o.wrk
				wo.duration = o.warmup
				if _, _, err := runWrk(ctx, wrkBin, t.addr, wo); err != nil {
					return err
				}
			}
			progress("round %d/%d: %s: wrk %s", round+1, o.runs, pathNames[t.key], o.wrk.duration)
			var s *rssSampler
			pgid := 0
			if t.proc != nil {
				pgid = t.proc.pid()
				s = sampleRSS(pgid, 200*time.Millisecond)
			}
			cpu := startCPU(pgid)
			r, _, err := runWrk(ctx, wrkBin, t.addr, o.wrk)
			if s != nil {
				peaks[t.key] = max(peaks[t.key], s.stop())
			}
			if err != nil {
				return err
			}
			r.proxyCPU, r.proxySyscalls, r.others = cpu.stop(r.wrkCPU)
			if t.proc != nil && t.proc.exited() {
				return fmt.Errorf("%s exited during the run: %v\n%s", t.proc.name, t.proc.err, t.proc.tail(20))
			}
			results[t.key] = append(results[t.key], r)
		}
	}

	var up, down []time.Duration
	if o.regSamples > 0 && routerProc != nil {
		progress("timing %d registrations and removals through the router", o.regSamples)
		if up, down, err = regTimes(ctx, reg, routerAddr, o.regSamples); err != nil {
			return fmt.Errorf("registration latency: %w", err)
		}
	}

	var routerHWM int64
	if routerProc != nil {
		routerHWM = statusKB(routerProc.pid(), "VmHWM") << 10
	}
	report(o, wrkBin, targets, results, peaks, up, down, routerIdle, routerHWM)
	return nil
}

func report(o options, wrkBin string, targets []target, results map[string][]wrkResult, peaks map[string]int64,
	up, down []time.Duration, routerIdle, routerHWM int64) {
	fmt.Println()
	fmt.Printf("Machine: %s\n", machine())
	fmt.Printf("Tools: %s; %s; %s\n", toolVersion("nginx", "-v"), toolVersion("haproxy", "-v"), wrkVersion(wrkBin))
	fmt.Printf("Load: `wrk -t%d -c%d -d%s --latency -H 'Host: %s'`, %d backends; %d round(s) over the paths, each run after a %s warm-up; the median run (by req/s) of each path is shown.\n",
		o.wrk.threads, o.wrk.conns, o.wrk.duration, o.wrk.host, o.backends, o.runs, o.warmup)
	fmt.Printf("Note: wrk, the proxy under test and the backends all share this machine's %d CPU(s); every figure is what they reach together, not the proxy alone.\n",
		runtime.NumCPU())
	fmt.Println()
	fmt.Println("| path | req/s | p50 ms | p99 ms | errors (all runs) | proxy CPU µs/req | peak RSS MiB | every run: req/s (others' CPU) |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---|")
	med := make(map[string]wrkResult)
	for _, t := range targets {
		rs := results[t.key]
		if len(rs) == 0 {
			continue
		}
		sorted := slices.Clone(rs)
		slices.SortFunc(sorted, func(a, b wrkResult) int {
			switch {
			case a.rps < b.rps:
				return -1
			case a.rps > b.rps:
				return 1
			}
			return 0
		})
		m := sorted[(len(sorted)-1)/2]
		med[t.key] = m
		var errs int64
		var each []string
		for _, r := range rs {
			errs += r.errors
			each = append(each, fmt.Sprintf("%s (%.0f%%)", thousands(int64(r.rps)), 100*r.others))
		}
		rss, cpu := "–", "–"
		if t.proc != nil {
			rss = fmt.Sprintf("%.1f", mib(peaks[t.key]))
			if m.requests > 0 {
				cpu = fmt.Sprintf("%.1f", float64(m.proxyCPU)/float64(time.Microsecond)/float64(m.requests))
			}
		}
		fmt.Printf("| %s | %s | %.2f | %.2f | %d | %s | %s | %s |\n", pathNames[t.key], thousands(int64(m.rps)),
			ms(m.p50), ms(m.p99), errs, cpu, rss, strings.Join(each, ", "))
	}
	fmt.Println()
	if p, ok := med["pier"]; ok {
		for _, k := range []string{"pier-base", "nginx", "haproxy"} {
			if r, ok := med[k]; ok {
				fmt.Printf("- pier router / %s: %.2f of its req/s; p50 %.2f×, p99 %.2f× its latency\n",
					pathNames[k], p.rps/r.rps, float64(p.p50)/float64(r.p50), float64(p.p99)/float64(r.p99))
			}
		}
		if p.requests > 0 {
			// Only for pier: nginx and HAProxy use recv/send on sockets,
			// which /proc/PID/io does not count, so theirs would mislead.
			fmt.Printf("- pier router: %.2f read and write system calls per request (syscr + syscw of /proc/PID/io); one each way on each side would be 4\n",
				float64(p.proxySyscalls)/float64(p.requests))
		}
		fmt.Printf("- pier router memory: %.1f MiB VmRSS idle after start, %.1f MiB peak under load (VmHWM %.1f MiB)\n",
			mib(routerIdle), mib(peaks["pier"]), mib(routerHWM))
	}
	fmt.Println("- proxy CPU µs/req: the proxy's user and system CPU time over the median run, per request served (100 Hz accounting)")
	fmt.Println("- others' CPU: the share of the machine that processes other than this benchmark's kept busy during that run")
	if _, ok := med["nginx"]; ok {
		fmt.Println("- nginx's RSS is its master's and workers' summed, which counts their shared pages more than once")
	}
	if len(up) > 0 {
		fmt.Println()
		fmt.Printf("| router reaction (%d samples) | p50 ms | p99 ms | max ms |\n", len(up))
		fmt.Println("|---|---:|---:|---:|")
		for _, row := range []struct {
			name string
			d    []time.Duration
		}{
			{"up: `Register` called → the new instance serves its first request", up},
			{"down: registration closed (lease revoked) → the router answers 503", down},
		} {
			s := slices.Clone(row.d)
			slices.Sort(s)
			fmt.Printf("| %s | %.2f | %.2f | %.2f |\n", row.name, ms(rank(s, 0.50)), ms(rank(s, 0.99)), ms(s[len(s)-1]))
		}
	}
}
