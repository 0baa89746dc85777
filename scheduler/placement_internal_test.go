package scheduler

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/pierpaas/pier/api"
)

// mostLoaded is a bin-packing ranker: a placement makes a host rank
// higher, the opposite of Spread and LeastLoaded.
type mostLoaded struct{}

func (mostLoaded) Score(h *HostState, _ *Request, _ *GroupState) float64 {
	return -float64(h.MemUsed)
}

// naivePlace is placement by definition: for each job, check and score
// every host and take the best.
func naivePlace(p *Placer, r *Request, c Counts, n int, salt uint64) []int32 {
	p.load(c, 1)
	defer p.load(c, -1)
	for i := range p.Hosts {
		p.ties[i] = mix(p.Hosts[i].tie ^ salt)
	}
	var chosen []int32
	for len(chosen) < n {
		best := int32(-1)
		for i := range p.Hosts {
			if ok, _ := p.check(&p.Hosts[i], r); !ok {
				continue
			}
			p.score(i, r)
			if best < 0 || p.less(int32(i), best) {
				best = int32(i)
			}
		}
		if best < 0 {
			break
		}
		chosen = append(chosen, best)
		p.take(int(best), r)
	}
	for _, i := range chosen {
		p.g.SameType[i]--
		p.g.SameFormation[i]--
	}
	return chosen
}

func TestPlaceMatchesNaive(t *testing.T) {
	pipes := []*Pipeline{
		DefaultPipeline(),
		{Checkers: DefaultPipeline().Checkers, Rankers: []Ranker{mostLoaded{}}},
		{Checkers: DefaultPipeline().Checkers, Rankers: []Ranker{LeastLoaded{}, Spread{}}},
	}
	for seed := range uint64(300) {
		rng := rand.New(rand.NewPCG(seed, 3))
		pipe := pipes[rng.IntN(len(pipes))]
		hosts := make([]api.Host, 1+rng.IntN(40))
		mk := func() []HostState {
			hs := make([]HostState, len(hosts))
			for i := range hosts {
				hs[i] = HostState{Host: &hosts[i], MemUsed: int64(i*37) % 900, tie: uint64(i) * 0x9e3779b97f4a7c15}
			}
			return hs
		}
		for i := range hosts {
			hosts[i] = api.Host{ID: fmt.Sprint(i), MemoryMB: 512 + 128*rng.Int64N(8), CPUMillis: 4000,
				Tags: map[string]string{"disk": []string{"ssd", "hdd"}[rng.IntN(2)]}}
		}
		pt := api.ProcessType{Resources: api.Resources{MemoryMB: 64 * rng.Int64N(5)}, MaxPerHost: rng.IntN(4)}
		if rng.IntN(3) == 0 {
			pt.Tags = map[string]string{"disk": "ssd"}
		}
		r := NewRequest("a", "a-v1", "web", &pt)
		var c Counts
		for range rng.IntN(20) {
			c.SameType = append(c.SameType, int32(rng.IntN(len(hosts))))
			if rng.IntN(2) == 0 {
				c.SameFormation = append(c.SameFormation, c.SameType[len(c.SameType)-1])
			}
		}
		n, salt := 1+rng.IntN(60), rng.Uint64()
		a, b := NewPlacer(pipe, mk()), NewPlacer(pipe, mk())
		got, _ := a.Place(r, c, n, salt)
		want := naivePlace(b, r, c, n, salt)
		if !slices.Equal(got, want) {
			t.Fatalf("seed %d: n=%d on %d hosts: Place chose %v, naive %v", seed, n, len(hosts), got, want)
		}
		if !slices.EqualFunc(a.Hosts, b.Hosts, func(x, y HostState) bool { return x.MemUsed == y.MemUsed && x.CPUUsed == y.CPUUsed }) {
			t.Fatalf("seed %d: usage differs", seed)
		}
	}
}
