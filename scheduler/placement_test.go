package scheduler_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/scheduler"
)

func host(id string, memMB, cpu int64, tags ...string) api.Host {
	h := api.Host{ID: id, MemoryMB: memMB, CPUMillis: cpu, Tags: map[string]string{}}
	for i := 0; i+1 < len(tags); i += 2 {
		h.Tags[tags[i]] = tags[i+1]
	}
	return h
}

func request(pt api.ProcessType) *scheduler.Request {
	return scheduler.NewRequest("shop", "shop-v1", "web", &pt)
}

func TestCheckers(t *testing.T) {
	h := host("h1", 1024, 2000, "disk", "ssd")
	for _, tc := range []struct {
		name    string
		checker scheduler.Checker
		used    [2]int64 // memory, cpu already requested
		pt      api.ProcessType
		same    [2]int32 // same type, same formation on the host
		ok      bool
		reason  string
	}{
		{"fits", scheduler.ResourcesFit{}, [2]int64{512, 1000}, api.ProcessType{Resources: api.Resources{MemoryMB: 512, CPUMillis: 1000}}, [2]int32{}, true, ""},
		{"memory", scheduler.ResourcesFit{}, [2]int64{513, 0}, api.ProcessType{Resources: api.Resources{MemoryMB: 512}}, [2]int32{}, false, "lacked memory"},
		{"cpu", scheduler.ResourcesFit{}, [2]int64{0, 1500}, api.ProcessType{Resources: api.Resources{CPUMillis: 501}}, [2]int32{}, false, "lacked cpu"},
		{"nothing asked fits a full host", scheduler.ResourcesFit{}, [2]int64{4096, 9000}, api.ProcessType{}, [2]int32{}, true, ""},
		{"tag matches", scheduler.TagsMatch{}, [2]int64{}, api.ProcessType{Tags: map[string]string{"disk": "ssd"}}, [2]int32{}, true, ""},
		{"tag differs", scheduler.TagsMatch{}, [2]int64{}, api.ProcessType{Tags: map[string]string{"disk": "hdd"}}, [2]int32{}, false, "missing tag disk=hdd"},
		{"tag absent", scheduler.TagsMatch{}, [2]int64{}, api.ProcessType{Tags: map[string]string{"disk": "ssd", "zone": "a"}}, [2]int32{}, false, "missing tag zone=a"},
		{"under max", scheduler.MaxPerHost{}, [2]int64{}, api.ProcessType{MaxPerHost: 2}, [2]int32{1, 0}, true, ""},
		{"at max", scheduler.MaxPerHost{}, [2]int64{}, api.ProcessType{MaxPerHost: 2}, [2]int32{2, 1}, false, "at max 2 per host"},
		{"no max", scheduler.MaxPerHost{}, [2]int64{}, api.ProcessType{}, [2]int32{50, 50}, true, ""},
		{"omni free", scheduler.OmniOnePerHost{}, [2]int64{}, api.ProcessType{Omni: true}, [2]int32{1, 0}, true, ""},
		{"omni taken", scheduler.OmniOnePerHost{}, [2]int64{}, api.ProcessType{Omni: true}, [2]int32{1, 1}, false, "already ran one"},
		{"not omni", scheduler.OmniOnePerHost{}, [2]int64{}, api.ProcessType{}, [2]int32{3, 3}, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hs := scheduler.HostState{Host: &h, MemUsed: tc.used[0], CPUUsed: tc.used[1]}
			g := scheduler.GroupState{SameType: []int32{tc.same[0]}, SameFormation: []int32{tc.same[1]}}
			ok, reason := tc.checker.Check(&hs, request(tc.pt), &g)
			if ok != tc.ok || reason != tc.reason {
				t.Errorf("Check = %v %q, want %v %q", ok, reason, tc.ok, tc.reason)
			}
		})
	}
}

func placer(hosts ...api.Host) *scheduler.Placer {
	hs := make([]scheduler.HostState, len(hosts))
	for i := range hosts {
		hs[i].Host = &hosts[i]
	}
	return scheduler.NewPlacer(scheduler.DefaultPipeline(), hs)
}

func names(p *scheduler.Placer, idx []int32) []string {
	var out []string
	for _, i := range idx {
		out = append(out, p.Hosts[i].Host.ID)
	}
	return out
}

func TestRankingSpreadsThenLeastLoaded(t *testing.T) {
	p := placer(host("a", 1000, 1000), host("b", 1000, 1000), host("c", 4000, 1000))
	p.Hosts[0].MemUsed = 500 // a: half full
	p.Hosts[1].MemUsed = 100 // b: a tenth
	p.Hosts[2].MemUsed = 800 // c: a fifth
	req := request(api.ProcessType{Resources: api.Resources{MemoryMB: 100}})
	// The formation already has a job on b, so spreading puts the first
	// new one elsewhere, least loaded first (c at 0.2 before a at 0.5),
	// and only then doubles up, on the least loaded again (b at 0.1).
	got, why := p.Place(req, scheduler.Counts{SameType: []int32{1}, SameFormation: []int32{1}}, 3, 1)
	if want := []string{"c", "a", "b"}; !slices.Equal(names(p, got), want) || why != "" {
		t.Errorf("placed on %v (%q), want %v", names(p, got), why, want)
	}
	if p.Hosts[2].MemUsed != 900 || p.Hosts[0].MemUsed != 600 || p.Hosts[1].MemUsed != 200 {
		t.Errorf("usage not recorded: %+v", p.Hosts)
	}
}

func TestPendingExplanation(t *testing.T) {
	p := placer(host("a", 256, 4000, "disk", "ssd"), host("b", 256, 4000, "disk", "ssd"), host("c", 8192, 4000))
	req := request(api.ProcessType{Resources: api.Resources{MemoryMB: 512}, Tags: map[string]string{"disk": "ssd"}})
	got, why := p.Place(req, scheduler.Counts{}, 2, 1)
	if len(got) != 0 || why != "3 hosts: 2 lacked memory, 1 missing tag disk=ssd" {
		t.Errorf("placed %v, why %q", got, why)
	}
	// Hosts that fill up during placement explain the rest too.
	p = placer(host("a", 1024, 4000), host("b", 1024, 4000))
	req = request(api.ProcessType{MaxPerHost: 2})
	got, why = p.Place(req, scheduler.Counts{}, 6, 1)
	if len(got) != 4 || why != "2 hosts: 2 at max 2 per host" {
		t.Errorf("placed %d, why %q", len(got), why)
	}
	if _, why := placer().Place(req, scheduler.Counts{}, 1, 1); why != "no hosts" {
		t.Errorf("empty cluster: %q", why)
	}
	if s := scheduler.Explain(map[string]int{"lacked cpu": 1}); s != "1 host: 1 lacked cpu" {
		t.Errorf("Explain = %q", s)
	}
}

func TestMaxPerHostCountsOtherReleases(t *testing.T) {
	p := placer(host("a", 1024, 4000), host("b", 1024, 4000), host("c", 1024, 4000))
	req := request(api.ProcessType{MaxPerHost: 1})
	// Release v0 of the same process type still runs on a and b.
	got, why := p.Place(req, scheduler.Counts{SameType: []int32{0, 1}}, 2, 7)
	if !slices.Equal(names(p, got), []string{"c"}) || why != "3 hosts: 3 at max 1 per host" {
		t.Errorf("placed on %v, why %q", names(p, got), why)
	}
}

func TestPlaceOn(t *testing.T) {
	p := placer(host("a", 1024, 4000), host("b", 100, 4000))
	req := request(api.ProcessType{Omni: true, Resources: api.Resources{MemoryMB: 200}})
	if ok, why := p.PlaceOn(req, scheduler.Counts{}, 0); !ok || why != "" {
		t.Errorf("PlaceOn a = %v %q", ok, why)
	}
	if ok, why := p.PlaceOn(req, scheduler.Counts{SameFormation: []int32{0}}, 0); ok || why != "already ran one" {
		t.Errorf("PlaceOn a again = %v %q", ok, why)
	}
	if ok, why := p.PlaceOn(req, scheduler.Counts{}, 1); ok || why != "lacked memory" {
		t.Errorf("PlaceOn b = %v %q", ok, why)
	}
	if p.Hosts[0].MemUsed != 200 || p.Hosts[1].MemUsed != 0 {
		t.Errorf("usage: %d %d", p.Hosts[0].MemUsed, p.Hosts[1].MemUsed)
	}
}

// TestSeededTies: equal hosts are chosen by the seed, so a decision
// replays with its seed and different seeds spread the choice.
func TestSeededTies(t *testing.T) {
	hosts := make([]api.Host, 20)
	for i := range hosts {
		hosts[i] = host(fmt.Sprintf("h%02d", i), 1024, 1000)
	}
	first := func(seed int64) string {
		s := scheduler.Snapshot{Hosts: hosts, Seed: seed,
			Releases:   []api.Release{{ID: "shop-v1", App: "shop", Processes: map[string]api.ProcessType{"web": {Args: []string{"x"}}}}},
			Formations: []scheduler.FormationView{{Formation: api.Formation{App: "shop", Release: "shop-v1", Processes: map[string]int{"web": 1}}, Rev: 1}}}
		p := scheduler.Reconcile(s)
		return p.Start[0].Job.HostID
	}
	seen := map[string]bool{}
	for seed := range int64(20) {
		h := first(seed)
		if again := first(seed); again != h {
			t.Fatalf("seed %d chose %s, then %s", seed, h, again)
		}
		seen[h] = true
	}
	if len(seen) < 5 {
		t.Errorf("20 seeds chose only %d distinct hosts", len(seen))
	}
}
