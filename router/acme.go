package router

// Automatic certificates over ACME for routes with ACME set.
//
// autocert.Manager does the ACME work (account, orders, TLS-ALPN-01 and
// HTTP-01 challenges, renewal a third of the lifetime before expiry).
// Around it, ACME adds what a cluster of routers needs:
//
//   - a host policy from the route table: a certificate is requested
//     only for a name whose TLS route (Table.LookupTLS) has ACME set, so
//     that nobody can make the router ask the CA for arbitrary SNI names
//     and spend the cluster's rate limits. The same check guards every
//     order on the wire (orderGuard), which also stops autocert's
//     renewal of a route that has since been removed;
//   - a cache in the store (ACMECache), so that every router serves the
//     certificate any of them obtained, shares one ACME account, and
//     answers a challenge another router started (the CA may reach any
//     router that the domain's DNS points at);
//   - a lock per domain in the store, taken for a router's first
//     certificate of a domain, so that routers that see a new domain at
//     the same moment ask the CA once, not once each (Let's Encrypt
//     allows five duplicate certificates a week).

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
)

// ACME directories.
const (
	LetsEncryptURL        = autocert.DefaultACMEDirectory
	LetsEncryptStagingURL = "https://acme-staging-v02.api.letsencrypt.org/directory"
)

// ErrNoACMERoute: a certificate, challenge or order was asked for a name
// whose route does not ask for ACME (or that has no route).
var ErrNoACMERoute = errors.New("router: no ACME route for this name")

// ErrACMEClosed: the ACME was closed.
var ErrACMEClosed = errors.New("router: acme closed")

// acmeIssueTimeout bounds a handshake's wait for a first certificate:
// the lock, then the ACME exchange (autocert's own bound).
const acmeIssueTimeout = 5 * time.Minute

// acmeSessionTTL is the lease, in seconds, of a router's domain locks:
// a router that dies holding one lets the others go on after it.
const acmeSessionTTL = 30

// challengePathPrefix is where HTTP-01 challenges are answered.
const challengePathPrefix = "/.well-known/acme-challenge/"

// ACMEConfig configures an ACME.
type ACMEConfig struct {
	// DirectoryURL is the ACME server's directory; LetsEncryptURL when
	// empty (LetsEncryptStagingURL to try things out).
	DirectoryURL string
	// Email is the account's contact, to which the CA sends notices
	// such as expiry warnings. Optional.
	Email string
	// Client is the store, which keeps the certificates, the account
	// key and the domain locks under ACMECertsPrefix and
	// ACMELocksPrefix. Required.
	Client *clientv3.Client
	// HTTPClient talks to the ACME server; http.DefaultClient's
	// transport when nil. Tests give one that trusts their CA.
	HTTPClient *http.Client
	// RenewBefore is how long before expiry a certificate is renewed;
	// 0 is a third of its lifetime, at most 30 days (autocert's).
	RenewBefore time.Duration
	// Log receives the ACME logs; slog.Default() when nil.
	Log *slog.Logger
}

// ACME obtains, shares and renews certificates for the routes that ask
// for them (api.Route.ACME). Its methods are safe for concurrent use.
// Wire it into a router with GetCertificate on the HTTPS listener,
// HTTPHandler around the plain HTTP handler, and SetTable on every table.
// By using ACME, the operator accepts the CA's terms of service.
type ACME struct {
	log     *slog.Logger
	client  *clientv3.Client
	cache   *ACMECache
	m       *autocert.Manager
	http    *http.Client // to the ACME server, through orderGuard
	table   atomic.Pointer[Table]
	closed  atomic.Bool
	account atomic.Bool // the account key is known to be stored

	locks keyedLock

	mu    sync.Mutex
	ready map[string]bool // domains whose first certificate was settled under the lock
	sess  *concurrency.Session
}

// NewACME returns an ACME that allows no name until SetTable.
func NewACME(cfg ACMEConfig) (*ACME, error) {
	if cfg.Client == nil {
		return nil, errors.New("router: acme: no store client")
	}
	if cfg.DirectoryURL == "" {
		cfg.DirectoryURL = LetsEncryptURL
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.RenewBefore < 0 {
		return nil, errors.New("router: acme: negative RenewBefore")
	}
	a := &ACME{
		log:    cfg.Log.With("component", "router-acme"),
		client: cfg.Client,
		ready:  make(map[string]bool),
	}
	a.cache = NewACMECache(cfg.Client, a.log)
	var hc http.Client
	if cfg.HTTPClient != nil {
		hc = *cfg.HTTPClient
	}
	next := hc.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	hc.Transport = &orderGuard{next: next, a: a}
	a.http = &hc
	a.m = &autocert.Manager{
		Prompt:      autocert.AcceptTOS,
		Cache:       a.cache,
		HostPolicy:  a.hostPolicy,
		RenewBefore: cfg.RenewBefore,
		Email:       cfg.Email,
		Client: &acme.Client{
			DirectoryURL: cfg.DirectoryURL,
			HTTPClient:   a.http,
			UserAgent:    "pier-router",
		},
	}
	return a, nil
}

// SetTable makes t the table whose ACME routes name the domains
// certificates are obtained for. Call it with every table the proxy
// gets; a name whose route is gone gets no certificate from then on,
// not even one already obtained.
func (a *ACME) SetTable(t *Table) { a.table.Store(t) }

// Allowed reports whether host (a Host header or SNI name, normalised
// as by NormalizeHost) is a name ACME obtains certificates for: its TLS
// route in the current table (Table.LookupTLS) asks for ACME.
func (a *ACME) Allowed(host string) bool {
	r, ok := a.table.Load().LookupTLS(host)
	return ok && r.ACME
}

func (a *ACME) hostPolicy(_ context.Context, host string) error {
	if !a.Allowed(host) {
		return fmt.Errorf("%w: %q", ErrNoACMERoute, NormalizeHost(host))
	}
	return nil
}

// GetCertificate is a tls.Config.GetCertificate for the names of ACME
// routes: it returns the certificate the router holds or the store has,
// and otherwise obtains one, which may take a while (the handshake
// waits, up to 5 minutes). It also answers TLS-ALPN-01 challenges
// (hellos offering only acme.ALPNProto) for those names. For any other
// name it returns (nil, nil), without a look at the store or the CA, so
// that the caller fails the handshake or falls back to another
// certificate.
func (a *ACME) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	name := NormalizeHost(hello.ServerName)
	if name == "" || !a.Allowed(name) {
		return nil, nil
	}
	if a.closed.Load() {
		return nil, ErrACMEClosed
	}
	if len(hello.SupportedProtos) == 1 && hello.SupportedProtos[0] == acme.ALPNProto {
		// A challenge: autocert's token certificate, from memory or
		// from the store if another router started the validation.
		return a.m.GetCertificate(hello)
	}
	if a.isReady(name) {
		return a.m.GetCertificate(hello)
	}
	return a.firstCertificate(hello, name)
}

func (a *ACME) isReady(name string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.ready[name]
}

// firstCertificate settles this router's first certificate for name
// under the domain's lock in the store: it then finds the one another
// router obtained in the meantime, or obtains it while the others wait.
// autocert keeps the result, and renews it, so later handshakes skip
// all this.
func (a *ACME) firstCertificate(hello *tls.ClientHelloInfo, name string) (*tls.Certificate, error) {
	ctx := hello.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, acmeIssueTimeout)
	defer cancel()

	unlock, err := a.locks.lock(ctx, name) // one handshake per name at a time here
	if err != nil {
		return nil, err
	}
	defer unlock()
	if a.isReady(name) {
		return a.m.GetCertificate(hello)
	}
	release, err := a.lockDomain(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("router: acme: lock %s: %w", name, err)
	}
	defer release()
	if err := a.ensureAccountKey(ctx); err != nil {
		return nil, fmt.Errorf("router: acme: account key: %w", err)
	}
	cert, err := a.m.GetCertificate(hello)
	if err != nil {
		a.log.Warn("acme: no certificate", "domain", name, "err", err)
		return nil, err
	}
	a.mu.Lock()
	a.ready[name] = true
	a.mu.Unlock()
	attrs := []any{"domain", name}
	if leaf := cert.Leaf; leaf != nil {
		attrs = append(attrs, "issuer", leaf.Issuer.CommonName, "not_after", leaf.NotAfter, "serial", leaf.SerialNumber.Text(16))
	}
	a.log.Info("acme: certificate ready", attrs...)
	return cert, nil
}

// lockDomain takes name's lock in the store, on this router's session.
func (a *ACME) lockDomain(ctx context.Context, name string) (release func(), err error) {
	s, err := a.session(ctx)
	if err != nil {
		return nil, err
	}
	mu := concurrency.NewMutex(s, ACMELocksPrefix+name)
	if err := mu.Lock(ctx); err != nil {
		return nil, err
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), acmeCacheTimeout)
		defer cancel()
		if err := mu.Unlock(ctx); err != nil {
			// The lease ends it within acmeSessionTTL anyway.
			a.log.Warn("acme: unlock", "domain", name, "err", err)
		}
	}, nil
}

// session is this router's lease for its domain locks, renewed while
// the router runs and replaced if it was lost.
func (a *ACME) session(ctx context.Context) (*concurrency.Session, error) {
	a.mu.Lock()
	s := a.sess
	a.mu.Unlock()
	if s != nil {
		select {
		case <-s.Done():
		default:
			return s, nil
		}
	}
	lease, err := a.client.Grant(ctx, acmeSessionTTL)
	if err != nil {
		return nil, err
	}
	s, err = concurrency.NewSession(a.client, concurrency.WithLease(lease.ID), concurrency.WithTTL(acmeSessionTTL))
	if err != nil {
		a.revoke(lease.ID)
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed.Load() {
		s.Orphan()
		a.revoke(lease.ID)
		return nil, ErrACMEClosed
	}
	if old := a.sess; old != nil && old != s {
		select {
		case <-old.Done():
		default:
			// Another handshake made one meanwhile: keep that one.
			s.Orphan()
			a.revoke(lease.ID)
			return old, nil
		}
	}
	a.sess = s
	return s, nil
}

func (a *ACME) revoke(id clientv3.LeaseID) {
	ctx, cancel := context.WithTimeout(context.Background(), acmeCacheTimeout)
	defer cancel()
	a.client.Revoke(ctx, id) // expires on its own otherwise
}

// ensureAccountKey stores an account key unless one is: left to itself,
// autocert would store its own, and routers starting together would
// each overwrite the others' and register an account each.
func (a *ACME) ensureAccountKey(ctx context.Context) error {
	if a.account.Load() {
		return nil
	}
	_, err := a.cache.Get(ctx, acmeAccountKey)
	if errors.Is(err, autocert.ErrCacheMiss) {
		key, gerr := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if gerr != nil {
			return gerr
		}
		der, gerr := x509.MarshalECPrivateKey(key)
		if gerr != nil {
			return gerr
		}
		err = a.cache.createAccountKey(ctx, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
	}
	if err != nil {
		return err
	}
	a.account.Store(true)
	return nil
}

// HTTPHandler answers HTTP-01 challenges (GET
// /.well-known/acme-challenge/<token>) for the names of ACME routes,
// from memory or from the store when another router started the
// validation, and passes every other request, those for other names'
// challenge paths included, to fallback (the proxy; nil answers 404).
// It must serve the router's plain HTTP port, which the CA reaches on
// port 80.
func (a *ACME) HTTPHandler(fallback http.Handler) http.Handler {
	if fallback == nil {
		fallback = http.NotFoundHandler()
	}
	challenge := a.m.HTTPHandler(fallback)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, challengePathPrefix) && a.Allowed(r.Host) {
			challenge.ServeHTTP(w, r)
			return
		}
		fallback.ServeHTTP(w, r)
	})
}

// Close releases the router's domain locks and stops all traffic to the
// ACME server, autocert's renewals included (they cannot be stopped
// otherwise). The caller closes the store client after it.
func (a *ACME) Close() error {
	a.closed.Store(true)
	a.mu.Lock()
	s := a.sess
	a.sess = nil
	a.mu.Unlock()
	if s == nil {
		return nil
	}
	s.Orphan()
	ctx, cancel := context.WithTimeout(context.Background(), acmeCacheTimeout)
	defer cancel()
	if _, err := a.client.Revoke(ctx, s.Lease()); err != nil {
		return fmt.Errorf("router: acme: revoke lock lease: %w", err)
	}
	return nil
}

// orderGuard refuses, before they leave the router, ACME orders for
// names that ACME does not allow (any at all once it is closed). The
// host policy is checked only for a first certificate, and autocert
// renews the certificates it holds forever: this stops it renewing one
// whose route is gone.
type orderGuard struct {
	next http.RoundTripper
	a    *ACME
}

func (g *orderGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	if g.a.closed.Load() {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, ErrACMEClosed
	}
	if req.Method != http.MethodPost || req.Body == nil {
		return g.next.RoundTrip(req)
	}
	body, err := io.ReadAll(req.Body)
	req.Body.Close()
	if err != nil {
		return nil, err
	}
	for _, name := range orderNames(body) {
		if !g.a.Allowed(name) {
			g.a.log.Info("acme: order refused", "domain", name, "err", ErrNoACMERoute)
			return nil, fmt.Errorf("%w: %q", ErrNoACMERoute, name)
		}
	}
	out := req.Clone(req.Context())
	out.Body = io.NopCloser(bytes.NewReader(body))
	out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	out.ContentLength = int64(len(body))
	return g.next.RoundTrip(out)
}

// orderNames are the DNS identifiers of an ACME new-order request (a
// JWS whose payload lists "identifiers"); none for any other request.
func orderNames(body []byte) []string {
	var jws struct {
		Payload string `json:"payload"`
	}
	if json.Unmarshal(body, &jws) != nil || jws.Payload == "" {
		return nil
	}
	payload, err := base64.RawURLEncoding.DecodeString(jws.Payload)
	if err != nil {
		return nil
	}
	var order struct {
		Identifiers []struct {
			Type  string `json:"type"`
			Value string `json:"value"`
		} `json:"identifiers"`
	}
	if json.Unmarshal(payload, &order) != nil {
		return nil
	}
	var names []string
	for _, id := range order.Identifiers {
		names = append(names, id.Value)
	}
	return names
}

// keyedLock is a mutex per key.
type keyedLock struct {
	mu   sync.Mutex
	busy map[string]chan struct{} // closed when the key's holder unlocks
}

func (k *keyedLock) lock(ctx context.Context, key string) (unlock func(), err error) {
	for {
		k.mu.Lock()
		ch, held := k.busy[key]
		if !held {
			if k.busy == nil {
				k.busy = make(map[string]chan struct{})
			}
			ch = make(chan struct{})
			k.busy[key] = ch
			k.mu.Unlock()
			return func() {
				k.mu.Lock()
				delete(k.busy, key)
				k.mu.Unlock()
				close(ch)
			}, nil
		}
		k.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
}
