package sim

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/scheduler"
)

// Cluster is what the store would hold, with a revision counter, and
// host agents reduced to status changes. Its fields are for reading;
// change it through its methods so that revisions move.
type Cluster struct {
	Now        time.Time
	Rev        int64
	Hosts      map[string]api.Host
	Jobs       map[string]*scheduler.JobView // by job id
	Formations map[string]*scheduler.FormationView
	Releases   map[string]api.Release
	Statuses   map[string]*scheduler.StatusView
	OneOffs    map[string]*scheduler.OneOffView
	Draining   map[string]bool // hosts being drained
	Volumes    map[string]*scheduler.VolumeView
	Config     scheduler.Config
}

// New returns an empty cluster at time now.
func New(now time.Time) *Cluster {
	return &Cluster{
		Now:        now,
		Hosts:      map[string]api.Host{},
		Jobs:       map[string]*scheduler.JobView{},
		Formations: map[string]*scheduler.FormationView{},
		Releases:   map[string]api.Release{},
		Statuses:   map[string]*scheduler.StatusView{},
		OneOffs:    map[string]*scheduler.OneOffView{},
		Volumes:    map[string]*scheduler.VolumeView{},
	}
}

// PutVolume writes a volume record, as the controller (a removal mark)
// or an operator would; a nil record with its id deletes it.
func (c *Cluster) PutVolume(id string, v *api.Volume) {
	if v == nil {
		delete(c.Volumes, id)
		c.next()
		return
	}
	c.Volumes[id] = &scheduler.VolumeView{Volume: *v, Rev: c.next()}
}

func (c *Cluster) next() int64 { c.Rev++; return c.Rev }

func fk(app, release string) string { return app + "/" + release }

// AddHost adds a host, or brings one back.
func (c *Cluster) AddHost(h api.Host) { c.Hosts[h.ID] = h; c.next() }

// Drain marks a host as being drained (on) or usable again (off).
func (c *Cluster) Drain(id string, on bool) {
	if c.Draining == nil {
		c.Draining = map[string]bool{}
	}
	c.Draining[id] = on
	c.next()
}

// RemoveHost makes a host vanish, as its lease expiring would; its jobs
// stay, as their keys do.
func (c *Cluster) RemoveHost(id string) { delete(c.Hosts, id); c.next() }

// AddRelease stores a release.
func (c *Cluster) AddRelease(r api.Release) { c.Releases[r.ID] = r; c.next() }

// SetFormation writes a formation; nil processes delete it.
func (c *Cluster) SetFormation(app, release string, procs map[string]int) {
	k := fk(app, release)
	if procs == nil {
		delete(c.Formations, k)
		c.next()
		return
	}
	c.Formations[k] = &scheduler.FormationView{
		Formation: api.Formation{App: app, Release: release, Processes: procs, UpdatedAt: c.Now},
		Rev:       c.next(),
	}
}

// Snapshot returns the cluster as a scheduler sees it, in key order.
func (c *Cluster) Snapshot(seed int64) scheduler.Snapshot {
	s := scheduler.Snapshot{Now: c.Now, Seed: seed, Config: c.Config, Draining: c.Draining}
	for _, id := range slices.Sorted(maps.Keys(c.Hosts)) {
		s.Hosts = append(s.Hosts, c.Hosts[id])
	}
	s.Jobs = make([]scheduler.JobView, 0, len(c.Jobs))
	for _, jv := range c.Jobs {
		s.Jobs = append(s.Jobs, *jv)
	}
	slices.SortFunc(s.Jobs, func(a, b scheduler.JobView) int {
		return cmp.Or(strings.Compare(a.Job.HostID, b.Job.HostID), strings.Compare(a.Job.ID, b.Job.ID))
	})
	for _, k := range slices.Sorted(maps.Keys(c.Formations)) {
		s.Formations = append(s.Formations, *c.Formations[k])
	}
	for _, k := range slices.Sorted(maps.Keys(c.Releases)) {
		s.Releases = append(s.Releases, c.Releases[k])
	}
	for _, k := range slices.Sorted(maps.Keys(c.Statuses)) {
		s.Statuses = append(s.Statuses, *c.Statuses[k])
	}
	for _, k := range slices.Sorted(maps.Keys(c.OneOffs)) {
		s.OneOffs = append(s.OneOffs, *c.OneOffs[k])
	}
	for _, k := range slices.Sorted(maps.Keys(c.Volumes)) {
		s.Volumes = append(s.Volumes, *c.Volumes[k])
	}
	return s
}

// Apply writes a plan as Commit would, checking every guard, and returns
// the first guard that does not hold. keep, if not nil, is asked before
// each change (a start with the stop of the job it replaces is one) and
// a false drops it, as a transaction lost to a conflict would.
func (c *Cluster) Apply(p scheduler.Plan, keep func() bool) error {
	if keep == nil {
		keep = func() bool { return true }
	}
	for _, f := range p.Formations {
		fv := c.Formations[fk(f.App, f.Release)]
		if have := revOf(fv); have != f.Rev {
			return fmt.Errorf("formation %s/%s: revision %d, plan read %d", f.App, f.Release, have, f.Rev)
		}
		sv := c.Statuses[fk(f.App, f.Release)]
		if have := revOfStatus(sv); have != f.StatusRev {
			return fmt.Errorf("formation status %s/%s: revision %d, plan read %d", f.App, f.Release, have, f.StatusRev)
		}
	}
	rev := c.next()
	for _, s := range p.Start {
		if _, dup := c.Jobs[s.Job.ID]; dup {
			return fmt.Errorf("start %s: job exists", s.Job.ID)
		}
		if r := s.Replaces; r != nil {
			if err := c.checkJob(r.Job.ID, r.Rev); err != nil {
				return err
			}
		}
		for _, b := range s.Volumes {
			have := int64(0)
			if vv := c.Volumes[b.Volume.ID]; vv != nil {
				have = vv.Rev
			}
			if have != b.Rev {
				return fmt.Errorf("start %s: volume %s: revision %d, plan read %d", s.Job.ID, b.Volume.ID, have, b.Rev)
			}
		}
		if !keep() {
			continue
		}
		for _, b := range s.Volumes {
			c.Volumes[b.Volume.ID] = &scheduler.VolumeView{Volume: b.Volume, Rev: rev}
		}
		c.Jobs[s.Job.ID] = &scheduler.JobView{Job: s.Job, Rev: rev}
		if r := s.Replaces; r != nil {
			c.Jobs[r.Job.ID].Job, c.Jobs[r.Job.ID].Rev = r.Job, rev
		}
	}
	for _, s := range p.Stop {
		if err := c.checkJob(s.Job.ID, s.Rev); err != nil {
			return err
		}
		if keep() {
			c.Jobs[s.Job.ID].Job, c.Jobs[s.Job.ID].Rev = s.Job, rev
		}
	}
	for _, l := range p.MarkLost {
		jv := c.Jobs[l.Status.ID]
		if jv == nil || jv.StatusRev != l.Rev {
			return fmt.Errorf("lost %s: status moved", l.Status.ID)
		}
		if _, back := c.Hosts[l.Status.HostID]; back {
			return fmt.Errorf("lost %s: host %s is present", l.Status.ID, l.Status.HostID)
		}
		if keep() {
			st := l.Status
			jv.Status, jv.StatusRev = &st, rev
		}
	}
	for _, d := range p.Delete {
		jv := c.Jobs[d.JobID]
		if jv == nil || jv.Rev != d.Rev || jv.StatusRev != d.StatusRev {
			return fmt.Errorf("delete %s: moved", d.JobID)
		}
		if keep() {
			delete(c.Jobs, d.JobID)
		}
	}
	for _, f := range p.Formations {
		k := fk(f.App, f.Release)
		if f.Status == nil {
			delete(c.Statuses, k)
		} else {
			c.Statuses[k] = &scheduler.StatusView{Status: *f.Status, Rev: rev}
		}
	}
	return c.applyOneOffs(p.OneOffs, keep, rev)
}

func (c *Cluster) checkJob(id string, rev int64) error {
	if jv := c.Jobs[id]; jv == nil || jv.Rev != rev {
		return fmt.Errorf("job %s: revision moved from %d", id, rev)
	}
	return nil
}

func revOf(fv *scheduler.FormationView) int64 {
	if fv == nil {
		return 0
	}
	return fv.Rev
}

func revOfStatus(sv *scheduler.StatusView) int64 {
	if sv == nil {
		return 0
	}
	return sv.Rev
}

// RunAgents does what every present host's agent would do next: start
// its new jobs (straight to running) and stop those whose desired state
// is shutdown. It never moves a status back from a terminal one.
func (c *Cluster) RunAgents() {
	for _, jv := range c.Jobs {
		if _, ok := c.Hosts[jv.Job.HostID]; !ok {
			continue
		}
		st := jv.Status
		if st != nil && st.State.Terminal() {
			continue
		}
		switch {
		case jv.Job.Desired == api.DesiredShutdown:
			c.setStatus(jv, api.JobShutdown)
		case st == nil:
			c.setStatus(jv, api.JobRunning)
		}
	}
}

// End ends a job on a present host with state (complete, failed,
// rejected), as its process exiting would.
func (c *Cluster) End(id string, state api.JobState) {
	jv := c.Jobs[id]
	if jv == nil || (jv.Status != nil && jv.Status.State.Terminal()) {
		return
	}
	if _, ok := c.Hosts[jv.Job.HostID]; ok {
		c.setStatus(jv, state)
	}
}

func (c *Cluster) setStatus(jv *scheduler.JobView, state api.JobState) {
	st := api.JobStatus{ID: jv.Job.ID, HostID: jv.Job.HostID, State: state, UpdatedAt: c.Now}
	if jv.Status != nil {
		st.StartedAt = jv.Status.StartedAt
	}
	if state == api.JobRunning {
		st.StartedAt = c.Now
	}
	if state.Terminal() {
		st.FinishedAt = c.Now
	}
	jv.Status, jv.StatusRev = &st, c.next()
}
