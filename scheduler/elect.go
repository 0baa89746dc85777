package scheduler

import (
	"context"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// Leader is a won election. Its Guard, passed to Commit, makes every
// commit fail with store.ErrConflict once the leadership is gone: the
// leader key is bound to the session's lease, so when the lease expires
// (a leader paused past its TTL, cut off, or killed) the key vanishes,
// and a successor's key is another key. A paused leader that wakes up
// commits nothing, whether or not it noticed.
type Leader struct {
	Guard Guard
	sess  *concurrency.Session
	el    *concurrency.Election
}

// Elect campaigns under prefix as name, with a lease of ttl (at least one
// second), and returns once elected or when ctx ends. Any program can
// lead its own scheduler this way; pier's own use ElectionPrefix.
func Elect(ctx context.Context, cli *clientv3.Client, prefix, name string, ttl time.Duration) (*Leader, error) {
	sess, err := concurrency.NewSession(cli, concurrency.WithTTL(int(max(ttl/time.Second, 1))))
	if err != nil {
		return nil, err
	}
	el := concurrency.NewElection(sess, prefix)
	if err := el.Campaign(ctx, name); err != nil {
		sess.Close()
		return nil, err
	}
	return &Leader{Guard: Guard{Key: el.Key(), Rev: el.Rev()}, sess: sess, el: el}, nil
}

// Done is closed when the leadership's lease is known to be lost. It may
// close late (a paused process learns late): the Guard is what makes a
// lost leadership safe, Done only what makes it prompt.
func (l *Leader) Done() <-chan struct{} { return l.sess.Done() }

// Lease is the lease the leadership is bound to.
func (l *Leader) Lease() clientv3.LeaseID { return l.sess.Lease() }

// Close resigns: the lease is revoked and a successor may be elected.
func (l *Leader) Close() error { return l.sess.Close() }
