package discovery

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/pierpaas/pier/store/storetest"
)

// BenchmarkDiscovery measures, on one real 3-member cluster, how long
// watchers take to learn of a change:
//
//	up:       from calling Register to each watcher's up event
//	failover: from the leader's deregistration (its lease revoked) to each
//	          watcher's leader event for the next instance
//
// for 1, 100 and 1,000 watchers spread over 4 clients (as if in several
// processes). Percentiles are over every watcher and every iteration.
//
//	go test -run '^$' -bench . ./discovery/
func BenchmarkDiscovery(b *testing.B) {
	c := storetest.NewCluster(b, 3)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	writer := New(c.Client(), WithPrefix("/bench"), WithLogger(log))
	var watchRegs []*Registry
	for range 4 {
		watchRegs = append(watchRegs, New(c.Client(), WithPrefix("/bench"), WithLogger(log)))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	type result struct {
		name     string
		watchers int
		p50, p99 time.Duration
		samples  int
	}
	var results []result
	report := func(b *testing.B, name string, n int, lat []time.Duration) {
		p50, p99 := percentile(lat, 0.50), percentile(lat, 0.99)
		b.ReportMetric(ms(p50), "p50-"+name+"-ms")
		b.ReportMetric(ms(p99), "p99-"+name+"-ms")
		b.ReportMetric(0, "ns/op")
		results = slices.DeleteFunc(results, func(r result) bool { return r.name == name && r.watchers == n })
		results = append(results, result{name, n, p50, p99, len(lat)})
	}

	for _, n := range []int{1, 100, 1000} {
		// The testing package calls each sub-benchmark several times with
		// growing b.N; watchers and samples are set up once per size.
		var upFleet, leadFleet *fleet
		var upLat, leadLat []time.Duration

		b.Run(fmt.Sprintf("up/watchers=%d", n), func(b *testing.B) {
			svc := fmt.Sprintf("up-%d", n)
			if upFleet == nil {
				// An anchor keeps the leader fixed, so only up events flow.
				mustRegister(b, writer, ctx, svc, "anchor")
				upFleet = startFleet(b, watchRegs, ctx, svc, n)
			}
			for i := 0; i < b.N; i++ {
				id := fmt.Sprintf("u%d", len(upLat))
				start := time.Now()
				reg := mustRegister(b, writer, ctx, svc, id)
				upLat = append(upLat, upFleet.await(b, EventUp, id, start)...)
				reg.Close()
			}
			report(b, "up", n, upLat)
		})

		b.Run(fmt.Sprintf("failover/watchers=%d", n), func(b *testing.B) {
			svc := fmt.Sprintf("lead-%d", n)
			var leader, next *Registration
			if leadFleet == nil {
				leadFleet = startFleet(b, watchRegs, ctx, svc, n)
			}
			leader = mustRegister(b, writer, ctx, svc, "a")
			next = mustRegister(b, writer, ctx, svc, "b")
			leadFleet.await(b, EventUp, "b", time.Now())
			for i := 0; i < b.N; i++ {
				id, nextID := leader.Instance().ID, next.Instance().ID
				start := time.Now()
				leader.Close()
				leadLat = append(leadLat, leadFleet.await(b, EventLeader, nextID, start)...)
				// The old leader comes back at the back of the line.
				leader, next = next, mustRegister(b, writer, ctx, svc, id)
				leadFleet.await(b, EventUp, id, time.Now())
			}
			leader.Close()
			next.Close()
			leadFleet.await(b, EventDown, next.Instance().ID, time.Now())
			report(b, "failover", n, leadLat)
		})
	}

	fmt.Printf("\n%-10s %9s %9s %9s %9s\n", "event", "watchers", "samples", "p50 ms", "p99 ms")
	for _, r := range results {
		fmt.Printf("%-10s %9d %9d %9.2f %9.2f\n", r.name, r.watchers, r.samples, ms(r.p50), ms(r.p99))
	}
}

type observation struct {
	typ EventType
	id  string
	at  time.Time
}

// fleet is n watchers of one service, whose events funnel into obs.
type fleet struct {
	n   int
	obs chan observation
}

func startFleet(b *testing.B, regs []*Registry, ctx context.Context, service string, n int) *fleet {
	f := &fleet{n: n, obs: make(chan observation, 8*n+64)}
	for i := range n {
		ch, err := regs[i%len(regs)].Watch(ctx, service)
		if err != nil {
			b.Fatal(err)
		}
		go func() {
			for ev := range ch {
				if ev.Instance != nil {
					f.obs <- observation{ev.Type, ev.Instance.ID, time.Now()}
				}
			}
		}()
	}
	return f
}

// await waits until every watcher has seen the event and returns each
// one's delay since start. Each watcher sends each event exactly once, so
// n matching observations mean every watcher has it; others are dropped.
func (f *fleet) await(b *testing.B, typ EventType, id string, start time.Time) []time.Duration {
	timeout := time.After(30 * time.Second)
	lat := make([]time.Duration, 0, f.n)
	for len(lat) < f.n {
		select {
		case o := <-f.obs:
			if o.typ == typ && o.id == id {
				lat = append(lat, o.at.Sub(start))
			}
		case <-timeout:
			b.Fatalf("%d of %d watchers saw %s %s", len(lat), f.n, typ, id)
		}
	}
	return lat
}

func mustRegister(b *testing.B, r *Registry, ctx context.Context, service, id string) *Registration {
	reg, err := r.Register(ctx, service, Instance{ID: id, Addr: "10.0.0.1:80"})
	if err != nil {
		b.Fatal(err)
	}
	return reg
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(int(p*float64(len(s))), len(s)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
