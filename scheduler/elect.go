package scheduler

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
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
//
// Names must be unique among the candidates: a key under prefix that
// holds name on another lease is taken for this candidate's own, from
// before a restart, and its lease is revoked first (see
// revokeOwnStale).
func Elect(ctx context.Context, cli *clientv3.Client, prefix, name string, ttl time.Duration, opts ...ElectOption) (*Leader, error) {
	var cfg electConfig
	for _, o := range opts {
		o(&cfg)
	}
	if err := revokeOwnStale(ctx, cli, prefix, name); err != nil {
		return nil, err
	}
	sess, err := concurrency.NewSession(cli, concurrency.WithTTL(int(max(ttl/time.Second, 1))))
	if err != nil {
		return nil, err
	}
	el := concurrency.NewElection(sess, prefix)
	campaign, stop := context.WithCancel(ctx)
	if cfg.dead != nil {
		go deposeDead(campaign, cli, prefix, name, cfg)
	}
	err = el.Campaign(ctx, name)
	stop()
	if err != nil {
		sess.Close()
		return nil, err
	}
	return &Leader{Guard: Guard{Key: el.Key(), Rev: el.Rev()}, sess: sess, el: el}, nil
}

// ElectOption configures Elect.
type ElectOption func(*electConfig)

type electConfig struct {
	dead func(ctx context.Context, name string) bool
	log  *slog.Logger
}

// WithLeaderProbe lets a candidate cut short its wait for a leader that
// died without resigning, which would otherwise hold the election until
// its lease expires: while the candidate waits, it asks dead about the
// leader's name every probeEvery, and after deadStrikes yes in a row it
// revokes the leader's lease. dead must say yes only on proof (the
// leader's own port refusing connections), never on silence, which a
// partition gives too; a live leader deposed by mistake loses nothing but
// the work of a failover (its Guard fails its commits). log says when a
// leader is deposed.
func WithLeaderProbe(dead func(ctx context.Context, name string) bool, log *slog.Logger) ElectOption {
	return func(c *electConfig) { c.dead, c.log = dead, log }
}

const (
	probeEvery  = 300 * time.Millisecond
	deadStrikes = 3
)

// deposeDead probes the leader of the election under prefix until ctx
// ends, and revokes its lease once dead has said yes deadStrikes times
// in a row about the same leadership.
func deposeDead(ctx context.Context, cli *clientv3.Client, prefix, self string, cfg electConfig) {
	t := time.NewTicker(probeEvery)
	defer t.Stop()
	var suspect clientv3.LeaseID
	strikes := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// The leader is the oldest key under prefix, as
		// concurrency.Election orders them.
		resp, err := cli.Get(ctx, prefix+"/", clientv3.WithFirstCreate()...)
		if err != nil || len(resp.Kvs) == 0 {
			continue
		}
		kv := resp.Kvs[0]
		lease, leader := clientv3.LeaseID(kv.Lease), string(kv.Value)
		if leader == self || lease == 0 {
			continue
		}
		if lease != suspect {
			suspect, strikes = lease, 0
		}
		if !cfg.dead(ctx, leader) {
			strikes = 0
			continue
		}
		if strikes++; strikes < deadStrikes {
			continue
		}
		if _, err := cli.Revoke(ctx, lease); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			continue
		}
		if cfg.log != nil {
			cfg.log.Warn("deposed a dead leader", "election", prefix, "leader", leader, "by", self)
		}
		strikes = 0
	}
}

// Done is closed when the leadership's lease is known to be lost. It may
// close late (a paused process learns late): the Guard is what makes a
// lost leadership safe, Done only what makes it prompt.
func (l *Leader) Done() <-chan struct{} { return l.sess.Done() }

// Lease is the lease the leadership is bound to.
func (l *Leader) Lease() clientv3.LeaseID { return l.sess.Lease() }

// Close resigns: the lease is revoked and a successor may be elected.
func (l *Leader) Close() error { return l.sess.Close() }

// revokeOwnStale revokes the leases of the election keys under prefix
// that hold name: a previous run of this candidate, killed without
// resigning. etcd gives a restored lease a fresh TTL when it restarts
// too, so after a power cut such a key would otherwise hold the
// election for a whole TTL after everything is back, with no leader
// alive behind it.
func revokeOwnStale(ctx context.Context, cli *clientv3.Client, prefix, name string) error {
	resp, err := cli.Get(ctx, prefix+"/", clientv3.WithPrefix()) // concurrency.Election's keys
	if err != nil {
		return err
	}
	for _, kv := range resp.Kvs {
		if string(kv.Value) != name || kv.Lease == 0 {
			continue
		}
		if _, err := cli.Revoke(ctx, clientv3.LeaseID(kv.Lease)); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return err
		}
	}
	return nil
}
