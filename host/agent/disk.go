package agent

import (
	"context"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pierpaas/pier/discovery"
	"github.com/pierpaas/pier/store"
)

// The host's data disk (internal/diskguard): under pressure the host
// record says so, and schedulers place nothing new here; the agent
// itself refuses to start a job, in case one was placed before the
// record changed. Running jobs are left alone.

// followDisk republishes the host record at each change of the disk's
// pressure while sess lives. It returns false when ctx ends, true when
// the session is lost.
func (a *Agent) followDisk(ctx context.Context, sess *discovery.Session) bool {
	for {
		changed := a.cfg.Disk.Changed()
		select {
		case <-ctx.Done():
			// Leave the lease to expire: an agent restarting for an
			// upgrade re-registers before it does, and its jobs stay.
			return false
		case <-sess.Done():
			return true
		case <-changed:
			if err := a.putHost(ctx, sess); err != nil {
				// The next change, or a new session, tries again; the
				// agent refuses new jobs meanwhile all the same.
				a.cfg.Log.Warn("cannot publish the disk's state", "err", err)
			}
		}
	}
}

// refuseUnderPressure is why a new job cannot start here, nil if it can.
func (a *Agent) refuseUnderPressure() error {
	return a.cfg.Disk.Status().Refuse("new jobs")
}

// newSession makes the host's lease and writes its record on it. When
// the store grants no lease because a disk is full, the previous run's
// lease is kept alive instead, if etcd still has it: the record and the
// instances of the jobs that survived are on it, and routers go on
// sending them traffic (a restart on a full disk would otherwise take
// every app of the host out of discovery).
func (a *Agent) newSession(ctx context.Context, previous clientv3.LeaseID) (*discovery.Session, error) {
	sess, err := a.reg.NewSession(ctx, a.cfg.LeaseTTL)
	resumed := false
	if store.IsNoSpace(err) && previous != 0 {
		if sess, err = a.reg.ResumeSession(ctx, previous); err == nil {
			resumed = true
			a.cfg.Log.Warn("the store grants no lease (a disk is full); keeping the previous run's")
		}
	}
	if err != nil {
		return nil, err
	}
	if err := a.putHost(ctx, sess); err != nil {
		if resumed && store.IsNoSpace(err) {
			return sess, nil // the previous record stays, on this lease
		}
		if resumed {
			sess.Orphan() // not Close: that would revoke what is on it
		} else {
			sess.Close()
		}
		return nil, err
	}
	return sess, nil
}
