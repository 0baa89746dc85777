// Command host benchmarks the host agent with real processes and real
// containers: it starts `pier server` and `pier host` from a built binary,
// writes jobs into etcd as a scheduler would, and prints
//
//   - job start latency, from just before the job record is written to the
//     moment its status `running` arrives through an etcd watch, over
//     sequential jobs (p50, p99, mean), beside the time of a bare `runc run`
//     of a bundle prepared the same way by the runtime package
//     ((*runtime.Runc).BareRun), in the same run;
//   - the resident memory (VmRSS) of the `pier host` process and of every
//     `pier shim` with 50 jobs running.
//
// It needs root and runc (scripts/setup installs it). From the repository
// root:
//
//	make build && go run ./bench/host            # uses bin/pier
//	go run ./bench/host -pier /path/to/pier -jobs 500
//	go run ./bench/host -network both -jobs 100  # with and without job namespaces
//
// -network picks the agent's job networking: job (a network namespace per
// job, the default), host, or both: a cluster (server and agent) for each,
// the sequential starts alternated between them in rounds of ten, and the
// two modes' start latencies printed side by side.
//
// It takes about 90 seconds. The whole run happens in a private mount
// namespace with its own tmpfs on /run/pier, so that runc's state root and
// the shims' sockets are the benchmark's alone: the agent's garbage
// collector deletes every container of the shared runc root it does not
// know, and would otherwise kill those of any other agent on the machine
// (or they ours). Everything is cleaned up on success, failure or Ctrl-C:
// the jobs are stopped, the pier processes killed, leftover containers
// deleted through the runtime package, leftover shims killed, and the
// temporary directories removed. The exit status is non-zero if anything
// failed or was left behind.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
)

// nsEnv marks the re-executed benchmark running in its own mount namespace.
const nsEnv = "PIER_BENCH_HOST_NS"

type options struct {
	pier    string
	jobs    int // sequential jobs timed
	memJobs int // jobs running while memory is measured
	keep    bool
	network string // the agent's --network
}

func main() {
	var o options
	flag.StringVar(&o.pier, "pier", "bin/pier", "the pier binary to benchmark (make build)")
	flag.IntVar(&o.jobs, "jobs", 200, "jobs started one after another for the latency figures")
	flag.IntVar(&o.memJobs, "mem-jobs", 50, "jobs running while memory is measured")
	flag.BoolVar(&o.keep, "print-logs", false, "print the end of the server's and agent's logs")
	flag.StringVar(&o.network, "network", "job", "the agent's job networking: job (a namespace per job), host, or both (a cluster each, job starts alternated between them in rounds of ten)")
	flag.Parse()
	if o.jobs < 1 || o.memJobs < 1 {
		fatalf("-jobs and -mem-jobs must be positive")
	}
	switch o.network {
	case "job", "host", "both":
	default:
		fatalf("-network %q: want job, host or both", o.network)
	}
	if os.Geteuid() != 0 {
		fatalf("the host benchmark runs real containers and needs root")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		fatalf("runc not found: run scripts/setup (or apt-get install runc)")
	}
	bin, err := filepath.Abs(o.pier)
	if err == nil {
		_, err = os.Stat(bin)
	}
	if err != nil {
		fatalf("pier binary: %v (run `make build` first, or pass -pier)", err)
	}
	o.pier = bin

	if n := os.Getenv(netnsEnv); n != "" {
		os.Exit(netnsChild(n))
	}
	if os.Getenv(nsEnv) == "" {
		os.Exit(reexecInNamespace())
	}
	if err := privateRunDir(); err != nil {
		fatalf("%v", err)
	}
	os.Exit(run(o))
}

// reexecInNamespace runs this program again in a new mount namespace (Go
// makes its mounts private) and returns its exit status. A Ctrl-C at the
// terminal reaches both processes; this one leaves the cleanup to the
// child and waits for it.
func reexecInNamespace() int {
	self, err := os.Executable()
	if err != nil {
		fatalf("%v", err)
	}
	cmd := exec.Command(self, os.Args[1:]...)
	cmd.Env = append(os.Environ(), nsEnv+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	if err := cmd.Start(); err != nil {
		fatalf("start in a new mount namespace: %v", err)
	}
	go func() {
		for s := range sigs {
			if s != syscall.SIGINT { // SIGINT from a terminal reaches the child already
				cmd.Process.Signal(s)
			}
		}
	}()
	err = cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return max(ee.ExitCode(), 1)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/host:", err)
		return 1
	}
	return 0
}

// privateRunDir mounts a tmpfs on /run/pier, in this namespace only.
func privateRunDir() error {
	if err := os.MkdirAll("/run/pier", 0o700); err != nil {
		return err
	}
	if err := syscall.Mount("pier-bench", "/run/pier", "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, "mode=0700"); err != nil {
		return fmt.Errorf("private /run/pier: %w", err)
	}
	return nil
}

// run performs the benchmark and the cleanup, and returns the exit status.
func run(o options) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		for s := range sigs {
			fmt.Fprintf(os.Stderr, "\n%s: stopping; cleaning up (this takes a few seconds)\n", s)
			cancel()
		}
	}()

	modes := []string{o.network}
	if o.network == "both" {
		modes = []string{"job", "host"}
	}
	var benches []*bench
	for _, m := range modes {
		mo := o
		mo.network = m
		b, err := newBench(mo)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench/host:", err)
			for _, b := range benches {
				b.cleanup()
			}
			return 1
		}
		benches = append(benches, b)
	}
	status := 0
	func() {
		// A panic must not skip the cleanup either.
		defer func() {
			if r := recover(); r != nil {
				fmt.Fprintln(os.Stderr, "bench/host: panic:", r)
				status = 1
			}
		}()
		if err := runAll(ctx, benches); err != nil {
			fmt.Fprintln(os.Stderr, "bench/host:", err)
			if ctx.Err() == nil {
				for _, b := range benches {
					b.printLogTails()
				}
			}
			status = 1
		}
	}()
	clean := true
	for _, b := range benches {
		if o.keep {
			b.printLogTails()
		}
		if problems := b.cleanup(); len(problems) > 0 {
			for _, p := range problems {
				fmt.Fprintf(os.Stderr, "bench/host: cleanup (%s): %s\n", b.o.network, p)
			}
			clean = false
		}
	}
	if !clean {
		return 1
	}
	fmt.Println("cleanup: no pier process, container, shim, cgroup, job network or temporary directory left")
	return status
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench/host: "+format+"\n", args...)
	os.Exit(2)
}
