package discovery

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// syncHandler receives what follow learns about the keys under a prefix.
// An error ends follow: handlers return one only when their consumer is
// gone.
type syncHandler interface {
	// listed delivers the complete contents at rev: after the first list
	// and after every re-list forced by a compaction.
	listed(ctx context.Context, rev int64, kvs []*mvccpb.KeyValue) error
	// changed delivers the events of one watch response, oldest first,
	// each newer than everything delivered before.
	changed(ctx context.Context, evs []*clientv3.Event) error
}

// follow keeps h up to date with the keys under prefix until ctx ends or
// the client is closed. rev is the revision of a list already delivered
// to h, or 0 to list first.
//
// Every watch resumes at the revision after the last event delivered, so
// a broken stream (a member stopped, a leader lost: WithRequireLeader
// makes the member say so rather than go quiet) costs nothing but a
// reconnect. Only a compaction past that revision forces a re-list, and
// the handler turns the new list into differences.
func follow(ctx context.Context, client *clientv3.Client, log *slog.Logger, prefix string, rev int64, h syncHandler) {
	bo := backoff{min: 50 * time.Millisecond, max: 2 * time.Second}
	for ctx.Err() == nil && client.Ctx().Err() == nil {
		if rev == 0 {
			lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			resp, err := client.Get(lctx, prefix, clientv3.WithPrefix())
			cancel()
			if err != nil {
				log.Debug("list failed", "prefix", prefix, "err", err)
				if !bo.sleep(ctx) {
					return
				}
				continue
			}
			if h.listed(ctx, resp.Header.Revision, resp.Kvs) != nil {
				return
			}
			rev = resp.Header.Revision
		}
		next, compacted, err := watchFrom(ctx, client, log, prefix, rev, h)
		if err != nil {
			return
		}
		if compacted {
			log.Info("watch fell behind a compaction, re-listing", "prefix", prefix, "rev", rev)
			rev = 0
			continue
		}
		if next > rev {
			bo.reset()
		}
		rev = next
		if !bo.sleep(ctx) {
			return
		}
	}
}

// watchFrom watches from rev+1 until the stream breaks and returns the
// revision everything up to which has been delivered.
func watchFrom(ctx context.Context, client *clientv3.Client, log *slog.Logger, prefix string, rev int64, h syncHandler) (int64, bool, error) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch := client.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1), clientv3.WithProgressNotify())
	for wresp := range wch {
		if wresp.CompactRevision != 0 {
			return rev, true, nil
		}
		if err := wresp.Err(); err != nil {
			log.Debug("watch broke", "prefix", prefix, "rev", rev, "err", err)
			return rev, false, nil
		}
		if wresp.IsProgressNotify() {
			// etcd notifies progress only to watchers that have been sent
			// every event up to the header's revision.
			rev = max(rev, wresp.Header.Revision)
			continue
		}
		// The header revision of an event batch may run ahead of events
		// still to come, so only the events themselves move rev. Filtering
		// on it makes a resumed stream unable to repeat anything.
		evs := make([]*clientv3.Event, 0, len(wresp.Events))
		for _, ev := range wresp.Events {
			if ev.Kv.ModRevision > rev {
				evs = append(evs, ev)
			}
		}
		if len(evs) == 0 {
			continue
		}
		if err := h.changed(ctx, evs); err != nil {
			return rev, false, err
		}
		rev = evs[len(evs)-1].Kv.ModRevision
	}
	return rev, false, nil
}

type backoff struct {
	min, max, cur time.Duration
}

func (b *backoff) reset() { b.cur = 0 }

// sleep waits a jittered, growing delay and reports false if ctx ended.
func (b *backoff) sleep(ctx context.Context) bool {
	b.cur = min(max(2*b.cur, b.min), b.max)
	t := time.NewTimer(b.cur/2 + rand.N(b.cur/2+1))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
