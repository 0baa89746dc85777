package sim

import (
	"fmt"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/scheduler"
)

// SubmitOneOff stores a one-off request, as scheduler.SubmitOneOff would.
func (c *Cluster) SubmitOneOff(o api.OneOff) {
	if o.CreatedAt.IsZero() {
		o.CreatedAt = c.Now
	}
	v := c.OneOffs[o.ID]
	if v == nil {
		v = &scheduler.OneOffView{ID: o.ID}
		c.OneOffs[o.ID] = v
	}
	v.OneOff, v.Rev = &o, c.next()
}

// CancelOneOff deletes a one-off request; its status stays.
func (c *Cluster) CancelOneOff(id string) {
	v := c.OneOffs[id]
	if v == nil {
		return
	}
	v.OneOff, v.Rev = nil, 0
	if v.Status == nil {
		delete(c.OneOffs, id)
	}
	c.next()
}

// applyOneOffs applies one-off updates, each checked against its guards
// as its own transaction would be.
func (c *Cluster) applyOneOffs(us []scheduler.OneOffUpdate, keep func() bool, rev int64) error {
	for _, u := range us {
		v := c.OneOffs[u.ID]
		var have, haveStatus int64
		if v != nil {
			have, haveStatus = v.Rev, v.StatusRev
		}
		if have != u.Rev || haveStatus != u.StatusRev {
			return fmt.Errorf("one-off %s: revisions %d/%d, plan read %d/%d", u.ID, have, haveStatus, u.Rev, u.StatusRev)
		}
		switch {
		case u.Start != nil:
			if _, dup := c.Jobs[u.Start.ID]; dup {
				return fmt.Errorf("one-off %s: job exists", u.ID)
			}
		case u.Stop != nil:
			if err := c.checkJob(u.Stop.Job.ID, u.Stop.Rev); err != nil {
				return err
			}
		case u.Job != nil:
			jv := c.Jobs[u.Job.JobID]
			if jv == nil || jv.Rev != u.Job.Rev || jv.StatusRev != u.Job.StatusRev {
				return fmt.Errorf("one-off %s: job moved", u.ID)
			}
		}
		if !keep() {
			continue
		}
		switch {
		case u.Remove:
			delete(c.OneOffs, u.ID)
			if u.Job != nil {
				delete(c.Jobs, u.Job.JobID)
			}
			continue
		case u.Stop != nil:
			c.Jobs[u.Stop.Job.ID].Job, c.Jobs[u.Stop.Job.ID].Rev = u.Stop.Job, rev
			continue
		}
		if v == nil {
			v = &scheduler.OneOffView{ID: u.ID}
			c.OneOffs[u.ID] = v
		}
		st := *u.Status
		v.Status, v.StatusRev = &st, rev
		if u.Start != nil {
			c.Jobs[u.Start.ID] = &scheduler.JobView{Job: *u.Start, Rev: rev}
		}
	}
	return nil
}

// Advance moves the clock on.
func (c *Cluster) Advance(d time.Duration) { c.Now = c.Now.Add(d) }
