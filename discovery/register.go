package discovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// Session is a lease this process keeps alive, shared by several
// registrations: a host agent registers all its jobs' instances under its
// own lease, so they all vanish together when the host does, and one
// keep-alive stream serves them all.
type Session struct {
	cs *concurrency.Session
}

// NewSession grants a lease with the given TTL (etcd rounds it up to whole
// seconds and to its own minimum) and keeps it alive until Close, until
// the client is closed, or until etcd cannot be reached for a TTL.
func (r *Registry) NewSession(ctx context.Context, ttl time.Duration) (*Session, error) {
	cs, err := r.grant(ctx, ttl)
	if err != nil {
		return nil, err
	}
	return &Session{cs: cs}, nil
}

// ResumeSession keeps alive a lease granted before, by this process or a
// previous run of it, if etcd still has it: what a restarted daemon does
// when the store grants no new lease (its disk is full), so that the
// records and instances its previous run left on the lease stay.
func (r *Registry) ResumeSession(ctx context.Context, id clientv3.LeaseID) (*Session, error) {
	ttl, err := r.client.TimeToLive(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("discovery: resume lease %x: %w", int64(id), err)
	}
	if ttl.TTL <= 0 {
		return nil, fmt.Errorf("discovery: resume lease %x: %w", int64(id), rpctypes.ErrLeaseNotFound)
	}
	cs, err := concurrency.NewSession(r.client, concurrency.WithLease(id), concurrency.WithTTL(int(ttl.GrantedTTL)))
	if err != nil {
		return nil, fmt.Errorf("discovery: keep lease alive: %w", err)
	}
	return &Session{cs: cs}, nil
}

// SessionOf adopts an etcd session the caller already keeps, for instance
// the one that carries a host's presence key, so the host's instances and
// its presence share a fate.
func SessionOf(cs *concurrency.Session) *Session { return &Session{cs: cs} }

// Lease returns the session's lease.
func (s *Session) Lease() clientv3.LeaseID { return s.cs.Lease() }

// Done is closed when the lease is no longer kept alive: it expired, was
// revoked, or the session was closed.
func (s *Session) Done() <-chan struct{} { return s.cs.Done() }

// Orphan stops keeping the lease alive without revoking it: what is on
// it lives until its TTL runs out.
func (s *Session) Orphan() { s.cs.Orphan() }

// Close revokes the lease: every instance registered on it vanishes at once.
func (s *Session) Close() error { return ignoreLeaseNotFound(s.cs.Close()) }

func (r *Registry) grant(ctx context.Context, ttl time.Duration) (*concurrency.Session, error) {
	secs := max(int64(math.Ceil(ttl.Seconds())), 1)
	resp, err := r.client.Grant(ctx, secs)
	if err != nil {
		return nil, fmt.Errorf("discovery: grant lease: %w", err)
	}
	// The session keeps the lease alive on the client's context, not on
	// ctx: ctx bounds this call, the lease outlives it.
	cs, err := concurrency.NewSession(r.client, concurrency.WithLease(resp.ID), concurrency.WithTTL(int(resp.TTL)))
	if err != nil {
		r.client.Revoke(context.WithoutCancel(ctx), resp.ID)
		return nil, fmt.Errorf("discovery: keep lease alive: %w", err)
	}
	return cs, nil
}

func ignoreLeaseNotFound(err error) error {
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return nil
	}
	return err
}

// RegisterOption configures a registration.
type RegisterOption func(*regConfig)

type regConfig struct {
	ttl        time.Duration
	session    *Session
	reregister bool
}

// WithTTL sets the lease TTL of a registration with its own lease (5 s by
// default): how long an instance outlives its owner's death.
func WithTTL(ttl time.Duration) RegisterOption {
	return func(c *regConfig) { c.ttl = ttl }
}

// WithSession registers on a shared lease instead of a lease of its own.
// Such a registration does not re-register when the lease is lost: the
// lease's owner decides what happens then, since the lease usually
// carries other keys (a host's presence) that must come back with it.
func WithSession(s *Session) RegisterOption {
	return func(c *regConfig) { c.session = s }
}

// WithReregister turns automatic re-registration after a lost lease on
// (the default) or off.
func WithReregister(on bool) RegisterOption {
	return func(c *regConfig) { c.reregister = on }
}

// Registration is a registered instance, kept in etcd until Close or
// until its lease is lost.
//
// A registration with its own lease re-registers when that lease is lost
// (expired while etcd was unreachable, or revoked by someone else): it
// retries with backoff, under a new lease, until it succeeds or is closed.
// The instance is absent from discovery in between, and comes back with
// a new CreateRevision, hence at the back of the leader line: a leader
// that lost its lease must assume its leadership is gone, which is what
// Done is for.
type Registration struct {
	reg        *Registry
	service    string
	key        string
	ttl        time.Duration
	shared     bool
	reregister bool

	// opMu orders every write of the key (Update, Resign, re-registration,
	// Close) so an older value never lands after a newer one.
	opMu sync.Mutex

	mu     sync.Mutex
	inst   Instance
	sess   *concurrency.Session
	done   chan struct{}
	closed bool

	stop     chan struct{}
	loopDone chan struct{}
}

// RegisterRetrying is Register retried, with a growing pause (at most 5
// s) and a warning for each failure, until it succeeds or ctx ends (nil
// then): for daemons that must be listed whatever state the store is in
// when they start.
func (r *Registry) RegisterRetrying(ctx context.Context, service string, inst Instance, opts ...RegisterOption) *Registration {
	delay := 100 * time.Millisecond
	for {
		g, err := r.Register(ctx, service, inst, opts...)
		if err == nil {
			return g
		}
		r.cfg.log.Warn("cannot register; retrying", "service", service, "instance", inst.ID, "err", err, "in", delay)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
	}
}

// Register validates inst and registers it under service. An empty ID is
// generated, an empty Proto becomes "tcp". Registering an ID that is
// already present takes the key over (the instance keeps its place in the
// leader line): a restarted host agent re-adopting its jobs does that.
func (r *Registry) Register(ctx context.Context, service string, inst Instance, opts ...RegisterOption) (*Registration, error) {
	cfg := regConfig{ttl: defaultTTL, reregister: true}
	for _, o := range opts {
		o(&cfg)
	}
	if err := ValidService(service); err != nil {
		return nil, err
	}
	if inst.ID == "" {
		inst.ID = newID()
	}
	if inst.Proto == "" {
		inst.Proto = "tcp"
	}
	if err := validID(inst.ID); err != nil {
		return nil, err
	}
	if len(inst.Proto) > maxLabel || !idRE.MatchString(inst.Proto) {
		return nil, fmt.Errorf("%w: protocol %q", ErrInvalidName, inst.Proto)
	}
	if err := validAddr(inst.Addr); err != nil {
		return nil, err
	}
	if err := validMeta(inst.Meta); err != nil {
		return nil, err
	}
	inst.Meta = maps.Clone(inst.Meta)
	inst.Service = service

	g := &Registration{
		reg: r, service: service, key: r.cfg.instanceKey(service, inst.ID),
		ttl: cfg.ttl, shared: cfg.session != nil, reregister: cfg.reregister && cfg.session == nil,
		done: make(chan struct{}), stop: make(chan struct{}), loopDone: make(chan struct{}),
	}
	var sess *concurrency.Session
	if cfg.session != nil {
		sess = cfg.session.cs
	} else {
		var err error
		if sess, err = r.grant(ctx, cfg.ttl); err != nil {
			return nil, err
		}
	}
	inst, err := g.put(ctx, sess, inst)
	if err != nil {
		if !g.shared {
			sess.Close()
		}
		return nil, err
	}
	g.inst, g.sess = inst, sess
	go g.run()
	return g, nil
}

// put writes the instance on sess's lease and reads back its revisions in
// the same transaction.
func (g *Registration) put(ctx context.Context, sess *concurrency.Session, inst Instance) (Instance, error) {
	val, err := json.Marshal(record{ID: inst.ID, Addr: inst.Addr, Proto: inst.Proto, Meta: inst.Meta})
	if err != nil {
		return inst, err
	}
	resp, err := g.reg.client.Txn(ctx).Then(
		clientv3.OpPut(g.key, string(val), clientv3.WithLease(sess.Lease())),
		clientv3.OpGet(g.key),
	).Commit()
	if err != nil {
		return inst, fmt.Errorf("discovery: register %s/%s: %w", g.service, inst.ID, err)
	}
	if kvs := resp.Responses[1].GetResponseRange().Kvs; len(kvs) == 1 {
		inst.CreateRevision, inst.ModRevision = kvs[0].CreateRevision, kvs[0].ModRevision
	}
	return inst, nil
}

// run waits for the lease to be lost and re-registers.
func (g *Registration) run() {
	defer close(g.loopDone)
	for {
		g.mu.Lock()
		sess := g.sess
		g.mu.Unlock()
		select {
		case <-g.stop:
			return
		case <-sess.Done():
		}
		g.mu.Lock()
		if g.closed {
			g.mu.Unlock()
			return
		}
		close(g.done)
		again := g.reregister && g.reg.client.Ctx().Err() == nil
		g.mu.Unlock()
		if !again {
			g.reg.cfg.log.Warn("registration lost its lease", "key", g.key)
			return
		}
		g.reg.cfg.log.Warn("registration lost its lease, re-registering", "key", g.key)
		if !g.reregisterUntilDone() {
			return
		}
	}
}

// reregisterUntilDone retries with jittered exponential backoff and
// reports false if the registration was closed (or its client) first.
func (g *Registration) reregisterUntilDone() bool {
	backoff := 100 * time.Millisecond
	for {
		err := g.tryReregister()
		if err == nil {
			return true
		}
		if errors.Is(err, ErrClosed) || g.reg.client.Ctx().Err() != nil {
			return false
		}
		g.reg.cfg.log.Warn("re-registration failed", "service", g.service, "err", err, "retry", backoff)
		select {
		case <-g.stop:
			return false
		case <-time.After(backoff/2 + rand.N(backoff/2)):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (g *Registration) tryReregister() error {
	g.opMu.Lock()
	defer g.opMu.Unlock()
	ctx, cancel := context.WithTimeout(g.reg.client.Ctx(), 5*time.Second+g.ttl)
	defer cancel()
	// Close waits for this loop: don't make it wait out a slow attempt.
	go func() {
		select {
		case <-g.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	sess, err := g.reg.grant(ctx, g.ttl)
	if err != nil {
		return err
	}
	g.mu.Lock()
	inst := g.inst
	g.mu.Unlock()
	inst, err = g.put(ctx, sess, inst)
	if err != nil {
		sess.Close()
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		// Close is waiting for this loop to end; it will revoke g.sess,
		// which is the old lease, so revoke the new one here.
		go sess.Close()
		return ErrClosed
	}
	g.inst, g.sess, g.done = inst, sess, make(chan struct{})
	return nil
}

// Instance returns the registered instance as last written.
func (g *Registration) Instance() Instance {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.inst.clone()
}

// Lease returns the lease the instance is currently bound to.
func (g *Registration) Lease() clientv3.LeaseID {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.sess.Lease()
}

// Done is closed when the current lease is lost or the registration is
// closed. After a re-registration Done returns a new channel for the new
// lease; a leader should stop leading as soon as the one it holds closes.
func (g *Registration) Done() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.done
}

// Update replaces the instance's metadata (watchers see an update
// event). It returns ErrLeaseLost if the key is gone; the new metadata is
// then kept for the re-registration.
func (g *Registration) Update(ctx context.Context, meta map[string]string) error {
	if err := validMeta(meta); err != nil {
		return err
	}
	g.opMu.Lock()
	defer g.opMu.Unlock()
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return ErrClosed
	}
	g.inst.Meta = maps.Clone(meta)
	inst, sess := g.inst, g.sess
	g.mu.Unlock()

	val, err := json.Marshal(record{ID: inst.ID, Addr: inst.Addr, Proto: inst.Proto, Meta: inst.Meta})
	if err != nil {
		return err
	}
	// Guarded by the lease so a registration whose key was taken over by
	// another owner (see Register) cannot write over it.
	resp, err := g.reg.client.Txn(ctx).
		If(clientv3.Compare(clientv3.LeaseValue(g.key), "=", sess.Lease())).
		Then(clientv3.OpPut(g.key, string(val), clientv3.WithLease(sess.Lease()))).
		Commit()
	if err != nil {
		return fmt.Errorf("discovery: update %s/%s: %w", g.service, inst.ID, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("%w: %s/%s", ErrLeaseLost, g.service, inst.ID)
	}
	g.mu.Lock()
	g.inst.ModRevision = resp.Header.Revision
	g.mu.Unlock()
	return nil
}

// Resign sends the instance to the back of the leader line while keeping
// it registered: its key is deleted and written again, so it gets a new
// CreateRevision. Watchers see it go down and come up, and the next
// oldest instance becomes leader. Close resigns too, by leaving.
func (g *Registration) Resign(ctx context.Context) error {
	g.opMu.Lock()
	defer g.opMu.Unlock()
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return ErrClosed
	}
	inst, sess := g.inst, g.sess
	g.mu.Unlock()
	// etcd refuses two writes of one key in a transaction, so this takes
	// two steps, and the instance is briefly absent.
	resp, err := g.reg.client.Txn(ctx).
		If(clientv3.Compare(clientv3.LeaseValue(g.key), "=", sess.Lease())).
		Then(clientv3.OpDelete(g.key)).
		Commit()
	if err != nil {
		return fmt.Errorf("discovery: resign %s/%s: %w", g.service, inst.ID, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("%w: %s/%s", ErrLeaseLost, g.service, inst.ID)
	}
	inst, err = g.put(ctx, sess, inst)
	if err != nil {
		return err
	}
	g.mu.Lock()
	g.inst = inst
	g.mu.Unlock()
	return nil
}

// Close deregisters at once: it revokes the registration's own lease, or
// deletes the key from a shared one. Watchers see the instance go down
// without waiting for a TTL.
func (g *Registration) Close() error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil
	}
	g.closed = true
	close(g.stop)
	g.mu.Unlock()
	<-g.loopDone

	g.opMu.Lock()
	defer g.opMu.Unlock()
	g.mu.Lock()
	sess, done := g.sess, g.done
	g.mu.Unlock()
	var err error
	if g.shared {
		ctx, cancel := context.WithTimeout(g.reg.client.Ctx(), 5*time.Second)
		_, err = g.reg.client.Txn(ctx).
			If(clientv3.Compare(clientv3.LeaseValue(g.key), "=", sess.Lease())).
			Then(clientv3.OpDelete(g.key)).
			Commit()
		cancel()
	} else {
		err = ignoreLeaseNotFound(sess.Close())
	}
	select {
	case <-done:
	default:
		close(done)
	}
	if err != nil {
		return fmt.Errorf("discovery: deregister %s: %w", g.key, err)
	}
	return nil
}
