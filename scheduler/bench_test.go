package scheduler_test

import (
	"fmt"
	"testing"

	"github.com/pierpaas/pier/scheduler"
	"github.com/pierpaas/pier/scheduler/sim"
)

// BenchmarkPlace100k: one pass placing 100,000 new jobs; placements/s is
// the figure to compare.
func BenchmarkPlace100k(b *testing.B) {
	for _, hosts := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("hosts=%d", hosts), func(b *testing.B) {
			s := sim.Synthetic(hosts, 100000, 1).Snapshot(1)
			b.ResetTimer()
			var placed int
			for b.Loop() {
				placed = len(scheduler.Reconcile(s).Start)
			}
			b.ReportMetric(float64(placed)*float64(b.N)/b.Elapsed().Seconds(), "placements/s")
		})
	}
}

// BenchmarkReplaceLostHosts: one pass over 100,000 running jobs after a
// tenth of the hosts vanished: mark their jobs lost and place the
// replacements.
func BenchmarkReplaceLostHosts(b *testing.B) {
	for _, hosts := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("hosts=%d", hosts), func(b *testing.B) {
			c := sim.Synthetic(hosts, 100000, 1)
			if err := c.Apply(scheduler.Reconcile(c.Snapshot(1)), nil); err != nil {
				b.Fatal(err)
			}
			c.RunAgents()
			c.RemoveHosts(0.1, 1)
			s := c.Snapshot(2)
			b.ResetTimer()
			var placed int
			for b.Loop() {
				placed = len(scheduler.Reconcile(s).Start)
			}
			b.ReportMetric(float64(placed), "replaced")
		})
	}
}
