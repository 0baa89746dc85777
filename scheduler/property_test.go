package scheduler_test

import (
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/scheduler"
	"github.com/pierpaas/pier/scheduler/sim"
)

var propertyRuns = flag.Int("property-runs", 300, "random scenarios for TestReconcileProperties")

// world is a random cluster and the process types it runs. A process
// type's tags and max per host are the same in every release of an app,
// so that "the constraint holds" has one meaning.
type world struct {
	c     *sim.Cluster
	rng   *rand.Rand
	hosts []api.Host // every host that ever existed, present or not
	rels  []api.Release
}

var tagChoices = []map[string]string{nil, nil, {"disk": "ssd"}, {"zone": "a"}, {"disk": "ssd", "zone": "b"}}

func newWorld(seed uint64) *world {
	rng := rand.New(rand.NewPCG(seed, 7))
	w := &world{c: sim.New(t0), rng: rng}
	for i := range rng.IntN(9) {
		h := host(fmt.Sprintf("h%d", i), 512+256*rng.Int64N(12), 1000+500*rng.Int64N(6))
		if rng.IntN(2) == 0 {
			h.Tags["disk"] = "ssd"
		}
		h.Tags["zone"] = []string{"a", "b"}[rng.IntN(2)]
		w.hosts = append(w.hosts, h)
		w.c.AddHost(h)
	}
	for a := range 1 + rng.IntN(3) {
		app := fmt.Sprintf("app%d", a)
		types := map[string]api.ProcessType{}
		for p := range 1 + rng.IntN(3) {
			types[fmt.Sprintf("p%d", p)] = api.ProcessType{
				Args:       []string{"run"},
				Tags:       tagChoices[rng.IntN(len(tagChoices))],
				MaxPerHost: []int{0, 0, 1, 2, 3}[rng.IntN(5)],
				Omni:       rng.IntN(7) == 0,
				Restart:    []api.RestartPolicy{"", api.RestartAlways, api.RestartOnFailure, api.RestartNever}[rng.IntN(4)],
			}
		}
		for v := range 1 + rng.IntN(2) {
			r := api.Release{ID: fmt.Sprintf("%s-v%d", app, v), App: app, Processes: map[string]api.ProcessType{}}
			for _, name := range slices.Sorted(maps.Keys(types)) {
				pt := types[name]
				pt.Resources = api.Resources{MemoryMB: 64 * rng.Int64N(8), CPUMillis: 100 * rng.Int64N(8)}
				r.Processes[name] = pt
			}
			w.rels = append(w.rels, r)
			w.c.AddRelease(r)
			w.scale(r)
		}
	}
	return w
}

// scale gives a release's formation random counts, or deletes it.
func (w *world) scale(r api.Release) {
	if w.rng.IntN(8) == 0 {
		w.c.SetFormation(r.App, r.ID, nil)
		return
	}
	procs := map[string]int{}
	for _, name := range slices.Sorted(maps.Keys(r.Processes)) {
		procs[name] = w.rng.IntN(7)
	}
	w.c.SetFormation(r.App, r.ID, procs)
}

// plan reconciles and applies the plan, dropping some of its changes
// when partial is set, and checks the safety properties.
func (w *world) plan(t *testing.T, partial bool) scheduler.Plan {
	t.Helper()
	before := w.liveCounts()
	s := w.c.Snapshot(w.rng.Int64())
	p := scheduler.Reconcile(s)
	keep := func() bool { return !partial || w.rng.IntN(3) > 0 }
	if err := w.c.Apply(p, keep); err != nil {
		t.Fatalf("plan does not apply: %v", err)
	}
	w.checkSafety(t, before)
	return p
}

type gk struct{ app, release, ptype string }

func (w *world) pt(k gk) *api.ProcessType {
	for _, r := range w.rels {
		if r.ID == k.release {
			pt := r.Processes[k.ptype]
			return &pt
		}
	}
	return nil
}

func (w *world) desired(k gk) int {
	if f := w.c.Formations[k.app+"/"+k.release]; f != nil {
		return f.Formation.Processes[k.ptype]
	}
	return 0
}

func (w *world) isLive(jv *scheduler.JobView) bool {
	_, present := w.c.Hosts[jv.Job.HostID]
	return present && jv.Job.Desired == api.DesiredRunning && (jv.Status == nil || !jv.Status.State.Terminal())
}

func (w *world) liveCounts() map[gk]int {
	m := map[gk]int{}
	for _, jv := range w.c.Jobs {
		if w.isLive(jv) {
			m[gk{jv.Job.App, jv.Job.Release, jv.Job.ProcessType}]++
		}
	}
	return m
}

// checkSafety: the scheduler never raises a group above its desired
// count (an omni group above one per host), and every job it keeps live
// satisfies its constraints, whatever part of a plan was applied.
func (w *world) checkSafety(t *testing.T, before map[gk]int) {
	t.Helper()
	after := w.liveCounts()
	for k, n := range after {
		pt := w.pt(k)
		if pt.Omni {
			continue
		}
		if d := w.desired(k); n > d && n > before[k] {
			t.Fatalf("%v: %d live, desired %d, was %d", k, n, d, before[k])
		}
	}
	type hk struct {
		host, app, ptype string
	}
	perType := map[hk]int{}
	omni := map[gk]map[string]int{}
	mem, cpu := map[string]int64{}, map[string]int64{}
	for _, jv := range w.c.Jobs {
		j := jv.Job
		if _, present := w.c.Hosts[j.HostID]; present && (jv.Status == nil || !jv.Status.State.Terminal()) {
			mem[j.HostID] += j.Resources.MemoryMB
			cpu[j.HostID] += j.Resources.CPUMillis
		}
		if !w.isLive(jv) {
			continue
		}
		k := gk{j.App, j.Release, j.ProcessType}
		pt, h := w.pt(k), w.c.Hosts[j.HostID]
		for tk, tv := range pt.Tags {
			if h.Tags[tk] != tv {
				t.Fatalf("job %s on %s lacks tag %s=%s", j.ID, h.ID, tk, tv)
			}
		}
		perType[hk{j.HostID, j.App, j.ProcessType}]++
		if n := perType[hk{j.HostID, j.App, j.ProcessType}]; pt.MaxPerHost > 0 && n > pt.MaxPerHost {
			t.Fatalf("%d jobs of %s/%s on %s, max %d", n, j.App, j.ProcessType, j.HostID, pt.MaxPerHost)
		}
		if pt.Omni {
			if omni[k] == nil {
				omni[k] = map[string]int{}
			}
			if omni[k][j.HostID]++; omni[k][j.HostID] > 1 {
				t.Fatalf("omni %v: two jobs on %s", k, j.HostID)
			}
		}
	}
	for id, h := range w.c.Hosts {
		if mem[id] > h.MemoryMB || cpu[id] > h.CPUMillis {
			t.Fatalf("host %s overcommitted: %d/%d MB, %d/%d millicores", id, mem[id], h.MemoryMB, cpu[id], h.CPUMillis)
		}
	}
}

// chaos makes one random thing happen.
func (w *world) chaos() {
	c, rng := w.c, w.rng
	c.Now = c.Now.Add(time.Duration(rng.IntN(90)) * time.Second)
	switch rng.IntN(6) {
	case 0, 1: // jobs end
		for _, id := range sortedJobIDs(c) {
			if rng.IntN(4) == 0 {
				c.End(id, []api.JobState{api.JobFailed, api.JobComplete, api.JobRejected}[rng.IntN(3)])
			}
		}
	case 2: // a host vanishes or returns
		if len(w.hosts) == 0 {
			return
		}
		h := w.hosts[rng.IntN(len(w.hosts))]
		if _, ok := c.Hosts[h.ID]; ok {
			c.RemoveHost(h.ID)
		} else {
			c.AddHost(h)
		}
	case 3: // a new host
		h := host(fmt.Sprintf("n%d", len(w.hosts)), 2048, 2000, "disk", "ssd", "zone", "a")
		w.hosts = append(w.hosts, h)
		c.AddHost(h)
	case 4: // a scale, a deploy or a formation removed
		if len(w.rels) > 0 {
			w.scale(w.rels[rng.IntN(len(w.rels))])
		}
	case 5: // agents act
		c.RunAgents()
	}
}

func sortedJobIDs(c *sim.Cluster) []string {
	ids := make([]string, 0, len(c.Jobs))
	for id := range c.Jobs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// converge runs scheduler and agents with no more faults until the plan
// is empty and no slot waits out a backoff.
func (w *world) converge(t *testing.T) scheduler.Plan {
	t.Helper()
	for range 60 {
		// Agents first, so that an empty plan was decided from the state
		// checked afterwards.
		w.c.RunAgents()
		p := w.plan(t, false)
		if p.Empty() && p.NextWake.IsZero() {
			return p
		}
		w.c.Now = w.c.Now.Add(time.Second)
		if p.NextWake.After(w.c.Now) {
			w.c.Now = p.NextWake
		}
	}
	t.Fatalf("no convergence in 60 passes")
	return scheduler.Plan{}
}

// checkConverged: every desired slot holds exactly one job (live, or
// ended and kept by its restart policy), or is pending because no host
// can take one more; omni groups have one on each eligible host.
func (w *world) checkConverged(t *testing.T, p scheduler.Plan) {
	t.Helper()
	pending := map[gk]int{}
	for _, pe := range p.Pending {
		pending[gk{pe.App, pe.Release, pe.ProcessType}] += pe.Count
		if pe.Reason == "" || !pe.Until.IsZero() {
			t.Errorf("pending %+v after convergence", pe)
		}
	}
	holders, waiting := map[gk]int{}, map[gk]int{}
	onHost := map[gk]map[string]int{}
	for _, jv := range w.c.Jobs {
		j := jv.Job
		k := gk{j.App, j.Release, j.ProcessType}
		_, present := w.c.Hosts[j.HostID]
		ended := jv.Status != nil && jv.Status.State.Terminal()
		// A job that ended and keeps its slot keeps it wherever its host
		// went; a live one needs its host.
		if j.Desired != api.DesiredRunning || (!present && !ended) {
			continue
		}
		if ended && restartable(w.pt(k), jv.Status.State) {
			// Its replacement is pending: it holds the slot's count.
			if waiting[k]++; waiting[k] > pending[k] {
				t.Errorf("job %s ended (%s) and was not replaced", j.ID, jv.Status.State)
			}
			continue
		}
		holders[k]++
		if onHost[k] == nil {
			onHost[k] = map[string]int{}
		}
		onHost[k][j.HostID]++
	}
	for _, r := range w.rels {
		for name, pt := range r.Processes {
			k := gk{r.App, r.ID, name}
			d := w.desired(k)
			if !pt.Omni {
				if holders[k]+pending[k] != d {
					t.Errorf("%v: %d jobs + %d pending, desired %d", k, holders[k], pending[k], d)
				}
				if pending[k] > 0 {
					w.checkNoHostFits(t, k, &pt)
				}
				continue
			}
			eligible := 0
			for id, h := range w.c.Hosts {
				ok := d > 0 && tagsMatch(h, pt.Tags)
				if ok {
					eligible++
				}
				if n := onHost[k][id]; n > 1 || (n == 1 && !ok) {
					t.Errorf("omni %v: %d jobs on %s (eligible %v)", k, n, id, ok)
				}
			}
			if holders[k]+pending[k] != eligible {
				t.Errorf("omni %v: %d jobs + %d pending, %d eligible hosts", k, holders[k], pending[k], eligible)
			}
		}
	}
}

func restartable(pt *api.ProcessType, s api.JobState) bool {
	switch pt.RestartPolicy() {
	case api.RestartNever:
		return s == api.JobLost
	case api.RestartOnFailure:
		return s == api.JobFailed || s == api.JobRejected || s == api.JobLost
	}
	return true
}

func tagsMatch(h api.Host, tags map[string]string) bool {
	for k, v := range tags {
		if h.Tags[k] != v {
			return false
		}
	}
	return true
}

// checkNoHostFits checks, without the placer, that no present host could
// take one more job of k: a pending job is never one that would fit.
func (w *world) checkNoHostFits(t *testing.T, k gk, pt *api.ProcessType) {
	t.Helper()
	for id, h := range w.c.Hosts {
		if !tagsMatch(h, pt.Tags) {
			continue
		}
		var mem, cpu int64
		same := 0
		for _, jv := range w.c.Jobs {
			if jv.Job.HostID != id || (jv.Status != nil && jv.Status.State.Terminal()) {
				continue
			}
			mem += jv.Job.Resources.MemoryMB
			cpu += jv.Job.Resources.CPUMillis
			if w.isLive(jv) && jv.Job.App == k.app && jv.Job.ProcessType == k.ptype {
				same++
			}
		}
		memOK := pt.Resources.MemoryMB == 0 || mem+pt.Resources.MemoryMB <= h.MemoryMB
		cpuOK := pt.Resources.CPUMillis == 0 || cpu+pt.Resources.CPUMillis <= h.CPUMillis
		if memOK && cpuOK && (pt.MaxPerHost == 0 || same < pt.MaxPerHost) {
			t.Errorf("%v pending, but host %s fits one more", k, id)
		}
	}
}

// TestReconcileProperties runs random clusters through random faults,
// scales and deploys, applying each plan in full or in part, then lets
// them settle.
func TestReconcileProperties(t *testing.T) {
	for run := range *propertyRuns {
		seed := uint64(run)
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			w := newWorld(seed)
			for range 1 + w.rng.IntN(40) {
				w.plan(t, w.rng.IntN(3) == 0)
				w.chaos()
			}
			w.checkConverged(t, w.converge(t))
		})
	}
}
