// Command scheduler benchmarks the service scheduler and prints a
// markdown table: placement decisions per second of a pure Reconcile
// pass (100,000 new jobs on 1,000 and on 10,000 simulated hosts), a pass
// over them all once running with nothing to do, the time to re-place
// the jobs of a tenth of the hosts after they vanish,
// and the same through a real embedded etcd member with mutual TLS:
// committed placements per second, and load + plan + commit after a
// tenth of the hosts' keys are gone.
//
//	go run ./bench/scheduler [-jobs 100000] [-hosts 1000,10000] [-etcd-jobs 100000] [-etcd-hosts 1000]
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/pierpaas/pier/scheduler"
	"github.com/pierpaas/pier/scheduler/sim"
)

func main() {
	jobs := flag.Int("jobs", 100000, "jobs to place in the pure benchmarks")
	hostList := flag.String("hosts", "1000,10000", "host counts for the pure benchmarks")
	etcdJobs := flag.Int("etcd-jobs", 100000, "jobs to commit through etcd (0: skip)")
	etcdHosts := flag.Int("etcd-hosts", 1000, "hosts in the etcd benchmark")
	runs := flag.Int("runs", 3, "runs of each pure pass; the fastest is reported")
	flag.Parse()

	fmt.Println("| measure | hosts | jobs | seconds | jobs/s |")
	fmt.Println("|---|---:|---:|---:|---:|")
	for _, f := range strings.Split(*hostList, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			log.Fatalf("-hosts: %v", err)
		}
		pure(n, *jobs, *runs)
	}
	if *etcdJobs > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		if err := throughEtcd(ctx, *etcdHosts, *etcdJobs); err != nil {
			log.Fatal(err)
		}
	}
}

func row(measure string, hosts, jobs int, d time.Duration) {
	fmt.Printf("| %s | %s | %s | %.3f | %s |\n", measure, thousands(hosts), thousands(jobs), d.Seconds(),
		thousands(int(float64(jobs)/d.Seconds())))
}

// pure times Reconcile on a simulated cluster: placing every job, then
// replacing the jobs of the tenth of the hosts that vanish.
func pure(hosts, jobs, runs int) {
	c := sim.Synthetic(hosts, jobs, 1)
	s := c.Snapshot(1)
	var p scheduler.Plan
	d := fastest(runs, func() { p = scheduler.Reconcile(s) })
	row("plan: place new jobs", hosts, len(p.Start), d)
	if len(p.Pending) > 0 {
		fmt.Fprintf(os.Stderr, "warning: %d pending: %s\n", len(p.Pending), p.Pending[0].Reason)
	}
	if err := c.Apply(p, nil); err != nil {
		log.Fatal(err)
	}
	c.RunAgents()
	s = c.Snapshot(2)
	d = fastest(runs, func() { p = scheduler.Reconcile(s) })
	if !p.Empty() {
		log.Fatalf("second pass is not empty: %d starts, %d stops", len(p.Start), len(p.Stop))
	}
	row("plan: steady state, nothing to do", hosts, len(s.Jobs), d)
	c.RemoveHosts(0.1, 1)
	s = c.Snapshot(3)
	d = fastest(runs, func() { p = scheduler.Reconcile(s) })
	row(fmt.Sprintf("plan: re-place jobs of 10%% of hosts (%s lost)", thousands(len(p.MarkLost))), hosts, len(p.Start), d)
}

// fastest runs f and returns its best time: on a shared machine the
// slower runs measure the neighbours.
func fastest(runs int, f func()) time.Duration {
	var best time.Duration
	for i := range max(runs, 1) {
		start := time.Now()
		f()
		if d := time.Since(start); i == 0 || d < best {
			best = d
		}
	}
	return best
}

func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
