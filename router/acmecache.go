package router

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/crypto/acme/autocert"

	"github.com/pierpaas/pier/store"
)

// The router's part of the keyspace for ACME. Every router of a cluster
// reads and writes the same keys, so that a certificate one of them
// obtained is served by all, and a challenge one of them started is
// answered by whichever the CA reaches.
//
// The values hold private keys (the ACME account's and each
// certificate's), as the routes under /pier/routes/ hold those of
// uploaded certificates: they are as safe as etcd, which in pier
// accepts only clients with a certificate of the cluster's CA (mTLS),
// but anything holding such a client certificate can read them.
const (
	// ACMECertsPrefix holds autocert's entries under their own names:
	// "<domain>" (an ECDSA certificate chain and its key, PEM),
	// "<domain>+rsa" (the same for clients without ECDSA),
	// "acme_account+key" (the ACME account's key), and, for the length
	// of a validation, "<domain>+token" (a TLS-ALPN-01 certificate) and
	// "<token>+http-01" (an HTTP-01 key authorisation).
	ACMECertsPrefix = "/pier/router-certs/"
	// ACMELocksPrefix holds one lock per domain (<domain>/<lease>), taken
	// by the router that obtains its first certificate so that the
	// others wait for it rather than ask the CA for the same one.
	ACMELocksPrefix = "/pier/router-cert-locks/"
)

// acmeAccountKey is the name autocert keeps the ACME account key under.
const acmeAccountKey = "acme_account+key"

// acmeTokenTTL bounds how long a challenge's entry outlives a router
// that died before it could delete it.
const acmeTokenTTL = time.Hour

// acmeCacheTimeout bounds each store operation: autocert calls some of
// them with no deadline while it holds its challenge lock, and a store
// that hangs must not hang every challenge with it.
const acmeCacheTimeout = 30 * time.Second

// ErrACMEAccountKey: a router tried to store an ACME account key while
// another one's was already stored. The stored key wins, so that all
// routers share one account; the next attempt reads it.
var ErrACMEAccountKey = errors.New("router: another ACME account key is already stored")

// acmeEntry is the JSON value of a key under ACMECertsPrefix.
type acmeEntry struct {
	Data      []byte    `json:"data"` // what autocert stored: PEM for keys and certificates
	WrittenAt time.Time `json:"written_at"`
}

// ACMECache is an autocert.Cache kept in the store under
// ACMECertsPrefix, shared by every router of the cluster.
type ACMECache struct {
	client *clientv3.Client
	log    *slog.Logger
}

var _ autocert.Cache = (*ACMECache)(nil)

// NewACMECache returns the cache of the cluster whose store client is
// given; log may be nil.
func NewACMECache(client *clientv3.Client, log *slog.Logger) *ACMECache {
	if log == nil {
		log = slog.Default()
	}
	return &ACMECache{client: client, log: log}
}

func acmeCacheKey(name string) (string, error) {
	return store.Key(ACMECertsPrefix, name)
}

// Get returns what Put stored under name, or autocert.ErrCacheMiss.
func (c *ACMECache) Get(ctx context.Context, name string) ([]byte, error) {
	key, err := acmeCacheKey(name)
	if err != nil {
		return nil, autocert.ErrCacheMiss // no such key can exist
	}
	ctx, cancel := context.WithTimeout(ctx, acmeCacheTimeout)
	defer cancel()
	e, _, err := store.Get[acmeEntry](ctx, c.client, key)
	if errors.Is(err, store.ErrNotFound) {
		return nil, autocert.ErrCacheMiss
	}
	if err != nil {
		return nil, err
	}
	return e.Data, nil
}

// Put stores data under name. A challenge's entry is bound to a lease
// of acmeTokenTTL, so that it goes away even if its router does not.
// The account key is only ever created, never replaced: a router that
// generated one while another stored its own gets ErrACMEAccountKey.
func (c *ACMECache) Put(ctx context.Context, name string, data []byte) error {
	key, err := acmeCacheKey(name)
	if err != nil {
		return fmt.Errorf("router: acme cache: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, acmeCacheTimeout)
	defer cancel()
	e := acmeEntry{Data: data, WrittenAt: time.Now().UTC()}
	switch {
	case name == acmeAccountKey:
		_, err := store.Create(ctx, c.client, key, e)
		if !errors.Is(err, store.ErrExists) {
			return err
		}
		stored, err := c.Get(ctx, name)
		if err != nil {
			return err
		}
		if !bytes.Equal(stored, data) {
			return ErrACMEAccountKey
		}
		return nil
	case isACMEChallengeEntry(name):
		lease, err := c.client.Grant(ctx, int64(acmeTokenTTL/time.Second))
		if err != nil {
			return fmt.Errorf("router: acme cache: lease for %s: %w", key, err)
		}
		_, err = store.Put(ctx, c.client, key, e, store.WithLease(lease.ID))
		return err
	default:
		if _, err := store.Put(ctx, c.client, key, e); err != nil {
			return err
		}
		c.log.Info("acme: certificate stored", "name", name)
		return nil
	}
}

// Delete removes name; a missing name is not an error.
func (c *ACMECache) Delete(ctx context.Context, name string) error {
	key, err := acmeCacheKey(name)
	if err != nil {
		return nil // nothing can be stored there
	}
	ctx, cancel := context.WithTimeout(ctx, acmeCacheTimeout)
	defer cancel()
	return store.Delete(ctx, c.client, key)
}

// createAccountKey stores data as the account key unless one is already
// stored, which then wins.
func (c *ACMECache) createAccountKey(ctx context.Context, data []byte) error {
	key, err := acmeCacheKey(acmeAccountKey)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, acmeCacheTimeout)
	defer cancel()
	_, err = store.Create(ctx, c.client, key, acmeEntry{Data: data, WrittenAt: time.Now().UTC()})
	if errors.Is(err, store.ErrExists) {
		return nil
	}
	return err
}

// isACMEChallengeEntry reports whether autocert's name is a challenge's
// short-lived entry rather than a certificate or the account key.
func isACMEChallengeEntry(name string) bool {
	return strings.HasSuffix(name, "+token") || strings.HasSuffix(name, "+http-01")
}
