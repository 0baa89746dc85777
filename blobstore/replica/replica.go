package replica

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/blobstore"
	"github.com/pierpaas/pier/discovery"
)

// LocalOnlyHeader on a blob request says the asker is a peer: answer
// from this server's disk only.
const LocalOnlyHeader = "Pier-Blob-Local-Only"

// Path is where a server's API serves blobs: Path + digest.
const Path = "/v1" + blobstore.PathPrefix

// ErrNowhere means no live peer holds the blob.
var ErrNowhere = errors.New("replica: no server has the blob")

// Replicator copies blobs from the other servers into this one's store.
type Replicator struct {
	Store    *blobstore.Store
	Registry *discovery.Registry
	// Self is this server's instance ID under api.ServersService (its
	// name).
	Self string
	// Client reaches the peers' API ports; it must present this server's
	// cluster certificate.
	Client *http.Client
	Log    *slog.Logger
	// Metrics, if set, count copies.
	Metrics *Metrics

	mu      sync.Mutex
	flights map[string]*flight
	missing []string // at the last pass
	// lacking are the wanted blobs this store lacked at the start of the
	// last pass, each with when a pass first found it lacking.
	lacking map[string]time.Time
}

// Lag says how many of the blobs wanted at the last pass this store
// still lacks, and how long the oldest of them has been lacking: how far
// replication is behind (0, 0 when it has caught up).
func (r *Replicator) Lag(now time.Time) (pending int, lag time.Duration) {
	r.mu.Lock()
	lacking := make(map[string]time.Time, len(r.lacking))
	for d, t := range r.lacking {
		lacking[d] = t
	}
	r.mu.Unlock()
	for d, since := range lacking {
		if _, err := r.Store.Stat(d); err == nil {
			continue
		}
		pending++
		lag = max(lag, now.Sub(since))
	}
	return pending, lag
}

// Missing is the kept blobs this server lacked, and no live server had,
// at the last replication pass.
func (r *Replicator) Missing() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.missing)
}

// flight is one copy in progress, which concurrent Fetches of the same
// digest wait for instead of downloading it again.
type flight struct {
	done chan struct{}
	err  error
}

// Fetch makes sure the local store has the blob, copying it from a peer
// if it does not. It returns ErrNowhere (wrapped) if no peer has it.
func (r *Replicator) Fetch(ctx context.Context, digest string) error {
	if !blobstore.ValidDigest(digest) {
		return blobstore.ErrBadDigest
	}
	if _, err := r.Store.Stat(digest); err == nil {
		return nil
	}
	r.mu.Lock()
	f, ok := r.flights[digest]
	if !ok {
		if r.flights == nil {
			r.flights = map[string]*flight{}
		}
		f = &flight{done: make(chan struct{})}
		r.flights[digest] = f
		// The copy is for everyone who waits for it: it does not end
		// with the first asker's context (a host that gave up), only
		// at its own bound.
		go func() {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), copyTimeout)
			defer cancel()
			f.err = r.copyFromPeers(cctx, digest)
			if m := r.Metrics; m != nil {
				if f.err == nil {
					m.copied.Inc()
				} else {
					m.failed.Inc()
				}
			}
			r.mu.Lock()
			delete(r.flights, digest)
			r.mu.Unlock()
			close(f.done)
		}()
	}
	r.mu.Unlock()
	select {
	case <-f.done:
		return f.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// copyTimeout bounds one copy of a blob from the peers.
const copyTimeout = 10 * time.Minute

// copyFromPeers asks the live peers, in random order so that servers
// catching up do not all load the same one, until one has the blob.
func (r *Replicator) copyFromPeers(ctx context.Context, digest string) error {
	peers, err := r.Registry.Instances(ctx, api.ServersService)
	if err != nil {
		return fmt.Errorf("replica: list servers: %w", err)
	}
	rand.Shuffle(len(peers), func(i, j int) { peers[i], peers[j] = peers[j], peers[i] })
	var errs []error
	for _, p := range peers {
		if p.ID == r.Self {
			continue
		}
		err := r.copyFrom(ctx, p, digest)
		if err == nil {
			return nil
		}
		if !errors.Is(err, blobstore.ErrNotFound) {
			errs = append(errs, err)
		}
	}
	return fmt.Errorf("%w: sha256:%s %w", ErrNowhere, digest, errors.Join(errs...))
}

func (r *Replicator) copyFrom(ctx context.Context, peer discovery.Instance, digest string) error {
	u := url.URL{Scheme: "https", Host: peer.Addr, Path: Path + digest}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	req.Header.Set(LocalOnlyHeader, "1")
	resp, err := r.Client.Do(req)
	if err != nil {
		return fmt.Errorf("replica: %s: %w", peer.ID, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return blobstore.ErrNotFound
	default:
		return fmt.Errorf("replica: %s answered %s", peer.ID, resp.Status)
	}
	// Put hashes what it stores: a peer cannot plant other bytes.
	if _, err := r.Store.Put(ctx, resp.Body, digest); err != nil {
		return fmt.Errorf("replica: copy from %s: %w", peer.ID, err)
	}
	r.Log.Debug("blob copied from a peer", "sha256", digest, "from", peer.ID)
	return nil
}

// Sync copies every wanted blob the local store lacks. It returns how
// many it copied and which no live peer has: not an error, as their only
// copy may be on a server that is down for now.
func (r *Replicator) Sync(ctx context.Context, want map[string]bool) (copied int, missing []string, err error) {
	now := time.Now()
	lacking := map[string]time.Time{}
	r.mu.Lock()
	for d := range want {
		if !blobstore.ValidDigest(d) {
			continue
		}
		if _, err := r.Store.Stat(d); err == nil {
			continue
		}
		since, ok := r.lacking[d]
		if !ok {
			since = now
		}
		lacking[d] = since
	}
	r.lacking = lacking
	r.mu.Unlock()
	for d := range lacking {
		switch err := r.Fetch(ctx, d); {
		case err == nil:
			copied++
		case ctx.Err() != nil:
			return copied, missing, ctx.Err()
		case errors.Is(err, ErrNowhere):
			missing = append(missing, d)
		default:
			return copied, missing, err
		}
	}
	slices.Sort(missing)
	return copied, missing, nil
}

// Run keeps the store holding the blobs want lists: a pass at start, at
// each signal on changed (debounced by the pass itself), and every
// interval to catch up after a partition or an outage of the peers.
func (r *Replicator) Run(ctx context.Context, want func(context.Context) (map[string]bool, error), changed <-chan struct{}, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	var lastMissing []string
	for {
		if ds, err := want(ctx); err != nil {
			if ctx.Err() == nil {
				r.Log.Warn("cannot list the kept blobs", "err", err)
			}
		} else {
			n, missing, err := r.Sync(ctx, ds)
			switch {
			case err != nil && ctx.Err() == nil:
				r.Log.Warn("blob replication pass failed", "err", err, "copied", n)
			case n > 0:
				r.Log.Info("blobs copied from other servers", "count", n)
			}
			if err == nil {
				r.mu.Lock()
				r.missing = missing
				r.mu.Unlock()
				if r.Metrics != nil {
					r.Metrics.missing.Set(float64(len(missing)))
				}
			}
			// Said once, not at every pass.
			if err == nil && !slices.Equal(missing, lastMissing) {
				if len(missing) > 0 {
					r.Log.Warn("kept blobs this server lacks are on no live server", "count", len(missing), "first", missing[0])
				}
				lastMissing = missing
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-t.C:
		}
	}
}
