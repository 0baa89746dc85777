package upgrade

import (
	"fmt"
	"time"

	"github.com/pierpaas/pier/api"
)

// Observed is what the loop saw of one node for a pass: its record (nil
// when it is not registered: stopped, restarting, or cut off), and the
// health checks' results, nil when they pass.
type Observed struct {
	Node *api.Node
	// Ready is the node's own /readyz; Healthy the cluster's view of it
	// (a server's etcd member answers and votes, a host's record is back).
	Ready, Healthy error
}

// Decision is what one pass changes: the upgrade's next record, and the
// orders to write before it (orders first: a loop that dies between the
// two writes the same orders again, under the same ids).
type Decision struct {
	Upgrade api.Upgrade
	Orders  []api.NodeOrder
	// Changed says whether Upgrade differs from the one decided on.
	Changed bool
}

// commitMargin is the part of a trial kept for the commit order to reach
// the node before its guard gives up on the new binary.
func commitMargin(trial time.Duration) time.Duration { return min(trial/4, 15*time.Second) }

// Next decides one pass of an upgrade from what the nodes show. It moves
// one step at a time: the current node is ordered onto the new binary
// on probation, committed once it is registered again with it, ready and
// healthy, and the next node begins only then. The first step that fails
// (the node went back to its old binary, or was not healthy in time)
// turns the upgrade to rolling back: the nodes already upgraded are
// ordered back onto their old binary, newest first, each waited for as
// on the way up.
func Next(u api.Upgrade, obs map[string]Observed, now time.Time) Decision {
	d := Decision{Upgrade: u}
	d.Upgrade.Steps = append([]api.UpgradeStep(nil), u.Steps...)
	switch u.State {
	case api.UpgradeRunning:
		d.forward(obs, now)
	case api.UpgradeRollingBack:
		d.backward(obs, now)
	}
	if d.Changed {
		d.Upgrade.UpdatedAt = now
		if d.Upgrade.State.Done() {
			d.Upgrade.FinishedAt = now
		}
	}
	return d
}

func (d *Decision) forward(obs map[string]Observed, now time.Time) {
	u := &d.Upgrade
	trial := time.Duration(u.Trial)
	i := -1
	for j, s := range u.Steps {
		if s.State != api.StepDone && s.State != api.StepSkipped {
			i = j
			break
		}
	}
	if i < 0 {
		u.State, d.Changed = api.UpgradeComplete, true
		return
	}
	s := &u.Steps[i]
	o := obs[s.Node]
	switch s.State {
	case api.StepPending:
		switch {
		case s.Since.IsZero():
			// The step's clock starts when its turn comes.
			s.Since, d.Changed = now, true
		case o.Node == nil:
			if now.Sub(s.Since) > trial {
				d.fail(i, now, fmt.Sprintf("%s is not running (not registered for %s)", s.Node, trial))
			}
		case o.Node.SHA256 == u.SHA256:
			s.State, s.Since, d.Changed = api.StepSkipped, now, true
		default:
			s.State, s.From, s.Since, s.Order, d.Changed = api.StepTrying, o.Node.SHA256, now, orderID(u.ID, i, "try"), true
			d.Orders = append(d.Orders, api.NodeOrder{ID: s.Order, Node: s.Node, SHA256: u.SHA256, Size: u.Size,
				Trial: u.Trial, Drain: drainFor(s.Kind, u.Drain)})
		}
	case api.StepTrying:
		switch {
		case o.Node != nil && o.Node.Failed == s.Order:
			d.fail(i, now, fmt.Sprintf("%s went back to its old binary: %s", s.Node, o.Node.Error))
		case o.Node != nil && o.Node.SHA256 == u.SHA256 && o.Node.Trial == s.Order && o.Ready == nil && o.Healthy == nil:
			s.State, s.Since, s.Order, d.Changed = api.StepCommitting, now, orderID(u.ID, i, "commit"), true
			d.Orders = append(d.Orders, api.NodeOrder{ID: s.Order, Node: s.Node, SHA256: u.SHA256, Size: u.Size, Commit: true})
		case now.Sub(s.Since) > trial-commitMargin(trial):
			d.fail(i, now, fmt.Sprintf("%s not healthy with the new binary within %s: %s", s.Node, trial-commitMargin(trial), why(o)))
		}
	case api.StepCommitting:
		switch {
		case o.Node != nil && o.Node.Committed == s.Order && o.Node.SHA256 == u.SHA256:
			s.State, s.Since, d.Changed = api.StepDone, now, true
		case o.Node != nil && o.Node.Failed == orderID(u.ID, i, "try"):
			d.fail(i, now, fmt.Sprintf("%s went back to its old binary before it was told to keep the new one: %s", s.Node, o.Node.Error))
		case now.Sub(s.Since) > trial:
			d.fail(i, now, fmt.Sprintf("%s did not confirm it keeps the new binary within %s", s.Node, trial))
		}
	}
}

// fail marks step i failed and turns the upgrade to rolling back. The
// failed node needs no order: its guard puts the old binary back when
// the trial ends unconfirmed, which a failed step's always does.
func (d *Decision) fail(i int, now time.Time, reason string) {
	u := &d.Upgrade
	s := &u.Steps[i]
	s.State, s.Since, s.Error = api.StepFailed, now, reason
	u.State, u.Reason, d.Changed = api.UpgradeRollingBack, reason, true
}

func (d *Decision) backward(obs map[string]Observed, now time.Time) {
	u := &d.Upgrade
	trial := time.Duration(u.Trial)
	for i := len(u.Steps) - 1; i >= 0; i-- {
		s := &u.Steps[i]
		o := obs[s.Node]
		switch s.State {
		case api.StepFailed:
			// Wait for the failed node to be back on its old binary
			// before touching others, as long as its guard may take.
			back := o.Node != nil && o.Node.SHA256 == s.From && o.Ready == nil
			if !back && now.Sub(s.Since) < trial+time.Minute {
				return
			}
			continue
		case api.StepDone:
			if s.From == "" || s.From == u.SHA256 {
				continue
			}
			s.State, s.Since, s.Order, d.Changed = api.StepRollingBack, now, orderID(u.ID, i, "rollback"), true
			// Back to a binary it ran before: no probation, it keeps it.
			d.Orders = append(d.Orders, api.NodeOrder{ID: s.Order, Node: s.Node, SHA256: s.From, Commit: true,
				Drain: drainFor(s.Kind, u.Drain)})
			return
		case api.StepRollingBack:
			switch {
			case o.Node != nil && o.Node.SHA256 == s.From && o.Node.Committed == s.Order && o.Ready == nil && o.Healthy == nil:
				s.State, s.Since, d.Changed = api.StepRolledBack, now, true
			case now.Sub(s.Since) > 2*trial:
				s.State, s.Since, s.Error, d.Changed = api.StepFailed, now, fmt.Sprintf("could not roll %s back within %s: %s", s.Node, 2*trial, why(o)), true
				u.Reason += "; " + s.Error
			default:
				return
			}
		}
	}
	u.State, d.Changed = api.UpgradeFailed, true
}

// drainFor is how long a node of kind k stays unready before it
// restarts: routers sit behind load balancers that need the time;
// clients of servers and hosts retry another one.
func drainFor(k api.NodeKind, drain api.Duration) api.Duration {
	if k == api.NodeRouter || k == api.NodeUp {
		return drain
	}
	return 0
}

// orderID names an order: the same step and phase always give the same
// id, so an order written twice is obeyed once.
func orderID(upgrade string, step int, phase string) string {
	return fmt.Sprintf("%s-%d-%s", upgrade, step, phase)
}

// why says what the node lacks, for a failure's reason.
func why(o Observed) string {
	switch {
	case o.Node == nil:
		return "not registered"
	case o.Ready != nil:
		return "not ready: " + o.Ready.Error()
	case o.Healthy != nil:
		return o.Healthy.Error()
	}
	return "running " + short(o.Node.SHA256)
}

func short(digest string) string {
	if len(digest) > 12 {
		return digest[:12]
	}
	return digest
}
