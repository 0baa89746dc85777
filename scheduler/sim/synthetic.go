package sim

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/pierpaas/pier/api"
)

// Synthetic returns a cluster of n hosts and formations wanting jobs jobs
// in all, for benchmarks: 64 GB and 32 cores a host, half of them tagged
// disk=ssd; apps of 200 jobs of two process types (web, 9/10 of the jobs,
// 256 MB and 100 millicores; worker, 512 MB and 250 millicores, needing
// an ssd host, at most 4 per host). 100 jobs a host use about half of
// it, so everything fits even after a tenth of the hosts vanish. Nothing
// is placed yet.
func Synthetic(n, jobs int, seed uint64) *Cluster {
	rng := rand.New(rand.NewPCG(seed, 1))
	c := New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	for i := range n {
		h := api.Host{ID: fmt.Sprintf("host-%05d", i), MemoryMB: 64 << 10, CPUMillis: 32000,
			Tags: map[string]string{"zone": fmt.Sprint("z", i%3)}}
		if rng.IntN(2) == 0 {
			h.Tags["disk"] = "ssd"
		}
		c.Hosts[h.ID] = h
	}
	art := &api.Artifact{Type: "slug", URI: "https://blobs.example/slug.tgz", SHA256: fmt.Sprintf("%064x", 1)}
	for a := 0; jobs > 0; a++ {
		n := min(jobs, 200)
		jobs -= n
		app := fmt.Sprintf("app-%04d", a)
		r := api.Release{ID: app + "-v1", App: app, Version: 1, Artifact: art,
			Env: map[string]string{"DATABASE_URL": "postgres://db/" + app},
			Processes: map[string]api.ProcessType{
				"web": {Args: []string{"bin/web"}, Ports: []api.Port{{Proto: "http", Service: app + "-web"}},
					Resources: api.Resources{MemoryMB: 256, CPUMillis: 100}},
				"worker": {Args: []string{"bin/worker"}, Resources: api.Resources{MemoryMB: 512, CPUMillis: 250},
					Tags: map[string]string{"disk": "ssd"}, MaxPerHost: 4},
			}}
		c.Releases[r.ID] = r
		c.SetFormation(app, r.ID, map[string]int{"web": n - n/10, "worker": n / 10})
	}
	return c
}

// RemoveHosts makes a fraction of the hosts vanish, chosen by seed, and
// returns how many jobs they held.
func (c *Cluster) RemoveHosts(frac float64, seed uint64) (hosts, jobs int) {
	rng := rand.New(rand.NewPCG(seed, 2))
	ids := make([]string, 0, len(c.Hosts))
	for id := range c.Hosts {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	gone := map[string]bool{}
	for _, id := range ids[:int(float64(len(ids))*frac)] {
		gone[id] = true
		delete(c.Hosts, id)
	}
	c.next()
	for _, jv := range c.Jobs {
		if gone[jv.Job.HostID] && jv.Job.Desired == api.DesiredRunning {
			jobs++
		}
	}
	return len(gone), jobs
}
