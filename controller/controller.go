package controller

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net/http"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/blobstore"
	"github.com/pierpaas/pier/blobstore/replica"
	"github.com/pierpaas/pier/internal/diskguard"
	"github.com/pierpaas/pier/store"
)

// Config is what a controller needs from the server it runs in.
type Config struct {
	Client *clientv3.Client
	// Blobs is this server's blobstore, and BlobURL the base URL at which
	// hosts reach it ("https://10.0.0.1:7300"); artifacts of releases
	// created here point there.
	Blobs   *blobstore.Store
	BlobURL string
	// Replica, if set, copies blobs this server lacks from the others.
	Replica *replica.Replicator
	// HostTLS carries the server's cluster certificate, for the host
	// agents' APIs (attach, stop).
	HostTLS *tls.Config
	Log     *slog.Logger
	// AppURL is where an app's web process answers, with {app} for its
	// name; shown in App.URL. Empty when unknown.
	AppURL string
	// KeepReleases is how many of an app's newest releases keep their
	// artifacts (DefaultKeepReleases when 0); GCInterval how often the
	// blobstore is swept (10 minutes when 0).
	KeepReleases int
	GCInterval   time.Duration
	// AttachWait bounds how long an attach waits for a one-off job to be
	// placed (default one minute).
	AttachWait time.Duration
	// TCPPortRange is the router ports TCP routes may take, both ends
	// included (DefaultTCPPortRange when zero). It must match the
	// routers' range: a router ignores a route outside its own.
	TCPPortRange [2]int
	// BuildResources bound each build job (DefaultBuildResources when
	// zero); BuildCA is the PEM of the CA that signed this server's
	// certificate, which build jobs verify it by.
	BuildResources api.Resources
	BuildCA        []byte
	// Git is what GET /v1/git answers: where the SSH git receiver is.
	Git api.GitInfo
	// ServerName is this server's name among the cluster's servers.
	ServerName string
	// Disk watches this server's data disk: builds and uploads are
	// refused while it is low on space. Nil: not watched.
	Disk *diskguard.Guard
	// CADir holds the cluster CA's certificate and key, and AdminKeyFile
	// the first API key's file, which backups carry (a backup is refused
	// when CADir is empty; AdminKeyFile is optional).
	CADir, AdminKeyFile string
	// ResourceHost is the host part of the address apps get for their
	// resources: where a router takes TCP traffic (DefaultResourceHost,
	// the router on the app's own host, when empty).
	ResourceHost string
	// LeaderDead, if set, tells a candidate of the controller's elected
	// loops (cluster backups) that the leader is certainly dead (see
	// scheduler.WithLeaderProbe).
	LeaderDead func(ctx context.Context, name string) bool
	// Now is the clock of the cluster backup schedules (time.Now when
	// nil): tests move it.
	Now func() time.Time
	// RegistryUploadDir holds the image registry's uploads in progress;
	// empty: no registry (/v2/) on this server.
	RegistryUploadDir string
}

// Controller serves the management API.
type Controller struct {
	Config
	peerOnce sync.Once
	peers    *http.Client // peerClient's
	keys     *store.Cache[api.APIKey]
	jobs     *store.Cache[api.Job]
	// resourceKick wakes the resource loop (resources_loop.go).
	resourceKick chan struct{}
}

// New returns a controller; Run must be going for it to authenticate.
func New(cfg Config) *Controller {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.KeepReleases <= 0 {
		cfg.KeepReleases = DefaultKeepReleases
	}
	if cfg.GCInterval <= 0 {
		cfg.GCInterval = 10 * time.Minute
	}
	if cfg.AttachWait == 0 {
		cfg.AttachWait = time.Minute
	}
	if cfg.TCPPortRange == ([2]int{}) {
		cfg.TCPPortRange = DefaultTCPPortRange
	}
	return &Controller{
		Config: cfg,
		keys:   store.NewCache[api.APIKey](cfg.Client, store.APIKeysPrefix),
		jobs:   store.NewCache[api.Job](cfg.Client, store.JobsPrefix),

		resourceKick: make(chan struct{}, 1),
	}
}

// Run keeps the controller's caches (API keys, jobs) in step with the
// store, sweeps the blobstore, and campaigns to run the resource loop
// and the cluster backup schedules, until ctx ends.
func (c *Controller) Run(ctx context.Context) {
	go c.jobs.Run(ctx)
	go c.collectBlobsEvery(ctx, c.GCInterval, c.KeepReleases)
	go c.runResources(ctx)
	go c.runClusterBackups(ctx)
	c.keys.Run(ctx)
}

func (c *Controller) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// Ready is closed once the API keys are loaded: before that every request
// would be refused.
func (c *Controller) Ready() <-chan struct{} { return c.keys.Synced() }

// Register adds the controller's endpoints to mux.
func (c *Controller) Register(mux *http.ServeMux) {
	for _, rt := range c.routes() {
		mux.Handle(rt.pattern, c.wrap(rt.h))
	}
	for pattern, h := range c.buildJobRoutes() {
		mux.Handle(pattern, c.wrapBuildJob(h))
	}
	for pattern, h := range c.backupJobRoutes() {
		mux.Handle(pattern, c.wrapBackupJob(h))
	}
	mux.Handle("GET /v1/openapi.json", c.wrap(func(w http.ResponseWriter, r *http.Request) error {
		writeJSON(w, http.StatusOK, openAPI(c.routes()))
		return nil
	}))
	// Unknown paths under /v1/ get a JSON 404 (after authentication, so
	// the API's shape is not probed for free).
	mux.Handle("/v1/", c.wrap(func(w http.ResponseWriter, r *http.Request) error {
		return notFound("no such endpoint: %s %s", r.Method, r.URL.Path)
	}))
	// And so does any other path the server has no handler for: an
	// unauthenticated request learns nothing but 401, whatever it asks.
	mux.Handle("/", c.wrap(func(w http.ResponseWriter, r *http.Request) error {
		return notFound("no such endpoint: %s %s", r.Method, r.URL.Path)
	}))
	if c.Blobs != nil {
		mux.Handle("/v1/blobs/", c.blobsHandler())
	}
	if c.Blobs != nil && c.RegistryUploadDir != "" {
		h, err := c.registryHandler()
		if err != nil {
			c.Log.Error("image registry disabled", "err", err)
			return
		}
		mux.Handle("/v2/", c.withRequestID(h))
	}
}

// wrap gives an endpoint the API's edges: request id, authentication and
// error answers.
func (c *Controller) wrap(h handlerFunc) http.Handler {
	return c.withRequestID(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := c.authenticate(r); err != nil {
			c.writeError(w, r, err)
			return
		}
		if key := r.Header.Get(api.IdempotencyHeader); key != "" {
			if err := checkIdempotencyKey(key); err != nil {
				c.writeError(w, r, err)
				return
			}
			r = r.WithContext(withIdempotencyKey(r.Context(), key))
		}
		if err := h(w, r); err != nil {
			c.writeError(w, r, err)
		}
	}))
}

func (c *Controller) withRequestID(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(RequestIDHeader, requestID(r))
		h.ServeHTTP(w, r)
	})
}

// authenticateBlob lets hosts fetch artifacts with their cluster
// certificate, and users (the CLI uploading a slug) with an API key.
func (c *Controller) authenticateBlob(r *http.Request) error {
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		return nil
	}
	return c.authenticate(r)
}
