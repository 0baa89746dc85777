package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pierpaas/pier/blobstore"
	"github.com/pierpaas/pier/blobstore/replica"
	"github.com/pierpaas/pier/controller"
	"github.com/pierpaas/pier/controller/deployer"
	"github.com/pierpaas/pier/dashboard"
	"github.com/pierpaas/pier/discovery"
	"github.com/pierpaas/pier/gitreceive"
	"github.com/pierpaas/pier/internal/daemon"
	"github.com/pierpaas/pier/internal/diskguard"
	"github.com/pierpaas/pier/internal/join"
	"github.com/pierpaas/pier/internal/pki"
	"github.com/pierpaas/pier/scheduler"
	"github.com/pierpaas/pier/store"
)

// Server is a running server role.
type Server struct {
	cfg    Config
	member *store.Member // nil with an external etcd
	CA     *pki.CA
	Creds  *pki.Credentials
	// Client is this server's etcd client, for the loops that run here.
	Client      *clientv3.Client
	ServerToken pki.Token
	HostToken   pki.Token
	Health      *daemon.Health

	// DNS answers discovery queries for programs without the Go client.
	DNS *discovery.DNSServer
	// Controller serves the management API, and Blobs the artifacts.
	Controller *controller.Controller
	Git        *gitreceive.Receiver
	Blobs      *blobstore.Store
	// Replica copies to Blobs the blobs other servers received.
	Replica *replica.Replicator
	// Disk watches the free space of the data directory.
	Disk *diskguard.Guard
	// AdminKey is the API key this server created for the cluster's
	// first user ("" when another server of the cluster made it).
	AdminKey string

	reg       *discovery.Registry
	probes    *http.Client // deadServer's
	api       *http.Server
	apiLn     net.Listener
	stop      context.CancelFunc
	stopped   chan struct{}
	closeOnce sync.Once
}

// Start brings the server up: credentials first (creating a cluster or
// joining one on first start), then the etcd member, then the endpoints.
// It returns once etcd answers.
func Start(ctx context.Context, cfg Config) (_ *Server, err error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if cfg.Restore != "" {
		// First: the data directory must still be empty.
		if len(cfg.Join) > 0 {
			return nil, errors.New("server: a restore makes a cluster's first server: it cannot join another")
		}
		if _, err := StageRestore(ctx, cfg.Restore, cfg.DataDir, AppDomain(cfg.AppURL), cfg.Log); err != nil {
			return nil, err
		}
	}
	s := &Server{cfg: cfg, Health: &daemon.Health{}, stopped: make(chan struct{})}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if err := s.guardDisk(); err != nil {
		return nil, err
	}
	st, err := s.prepareCredentials(ctx)
	if err != nil {
		return nil, err
	}
	if s.Creds, err = pki.LoadCredentials(cfg.pkiDir()); err != nil {
		return nil, err
	}
	if s.CA, err = pki.LoadCA(cfg.pkiDir()); err != nil {
		return nil, err
	}
	if s.ServerToken, err = pki.LoadOrCreateToken(cfg.pkiDir(), s.CA, pki.RoleServer); err != nil {
		return nil, err
	}
	if s.HostToken, err = pki.LoadOrCreateToken(cfg.pkiDir(), s.CA, pki.RoleHost); err != nil {
		return nil, err
	}

	endpoints := cfg.EtcdEndpoints
	if len(endpoints) == 0 {
		s.member, err = store.StartMember(ctx, store.MemberConfig{
			Name:           st.Name,
			DataDir:        cfg.etcdDir(),
			Creds:          s.Creds,
			ClientURL:      cfg.clientURL(),
			PeerURL:        cfg.peerURL(),
			InitialCluster: st.InitialCluster,
			ClusterState:   st.ClusterState,
			LogLevel:       cfg.EtcdLogLevel,
		})
		if err != nil {
			return nil, err
		}
		endpoints = append([]string{cfg.clientURL()}, st.Endpoints...)
	}
	clientCreds := s.Creds
	if cfg.EtcdCA != "" {
		if clientCreds, err = s.Creds.WithCA(cfg.EtcdCA); err != nil {
			return nil, err
		}
	}
	if s.Client, err = store.Dial(endpoints, clientCreds); err != nil {
		return nil, err
	}
	s.reg = discovery.New(s.Client, discovery.WithLogger(cfg.Log))
	s.probes = s.newProbeClient()
	runCtx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	if s.member != nil {
		// A learner cannot serve clients; promotion waits until it has
		// caught up with the leader, which can take a while for big stores.
		if err := s.promote(ctx); err != nil {
			return nil, err
		}
		// Learn the other members now, so this server's loops survive the
		// loss of its own member; the client keeps the list fresh after.
		syncCtx, cancelSync := context.WithTimeout(ctx, 5*time.Second)
		s.Client.Sync(syncCtx)
		cancelSync()
	}
	go s.followDisk(runCtx)
	readyCtx, cancelReady := context.WithTimeout(ctx, time.Minute)
	defer cancelReady()
	if err := store.WaitReady(readyCtx, s.Client); err != nil {
		return nil, err
	}
	if s.member != nil {
		// An alarm a previous run left on a disk that has room again
		// would refuse the writes starting up makes.
		s.syncNoSpace(ctx)
	}
	if err := s.applyRestore(ctx); err != nil {
		return nil, fmt.Errorf("server: restore: %w", err)
	}
	s.Health.AddReadyCheck("etcd", func(ctx context.Context) error {
		_, err := s.Client.Get(ctx, "/pier/ready-probe")
		return err
	})
	if err := s.startController(ctx, runCtx); err != nil {
		return nil, err
	}
	if err := s.startGit(ctx, runCtx); err != nil {
		return nil, err
	}
	if err := s.serveAPI(); err != nil {
		return nil, err
	}
	s.startLogs(runCtx)
	go s.registerAPI(runCtx)
	go s.replicateBlobs(runCtx)
	if s.DNS, err = discovery.NewDNSServer(s.Client, DNSDomain, discovery.WithLogger(cfg.Log)); err != nil {
		return nil, err
	}
	if err := s.DNS.Start(runCtx, cfg.addr(cfg.DNSPort)); err != nil {
		return nil, fmt.Errorf("server: DNS: %w", err)
	}
	// Every server campaigns; the elected one schedules.
	sched := &scheduler.Loop{Client: s.Client, Name: st.Name, Log: cfg.Log, LeaderDead: s.deadServer}
	go sched.Run(runCtx)
	// And the elected deployer rolls releases out.
	dep := &deployer.Loop{Client: s.Client, Name: st.Name, Log: cfg.Log, LeaderDead: s.deadServer}
	go dep.Run(runCtx)
	cfg.Log.Info("server ready", "name", st.Name, "api", "https://"+s.apiLn.Addr().String(),
		"etcd", endpoints, "embedded", s.member != nil)
	go func() {
		defer close(s.stopped)
		select {
		case <-runCtx.Done():
		case err := <-s.memberErr():
			cfg.Log.Error("etcd member failed", "err", err)
		}
	}()
	return s, nil
}

// prepareCredentials makes sure the data directory holds credentials and
// the member's start-up state, creating a cluster or joining one.
func (s *Server) prepareCredentials(ctx context.Context) (*state, error) {
	cfg := &s.cfg
	st, err := cfg.loadState()
	if err != nil {
		return nil, err
	}
	if st != nil && pki.HasCredentials(cfg.pkiDir()) {
		if st.Name != cfg.Name {
			cfg.Log.Warn("keeping the name this data directory was created with", "name", st.Name, "flag", cfg.Name)
		}
		return st, nil
	}
	st = &state{Name: cfg.Name, ClusterState: "new"}
	ips := []string{cfg.AdvertiseIP}
	if cfg.AdvertiseIP != "127.0.0.1" {
		ips = append(ips, "127.0.0.1")
	}
	if len(cfg.Join) > 0 {
		tok, err := pki.ParseToken(cfg.Token)
		if err != nil {
			return nil, err
		}
		resp, err := join.Join(ctx, cfg.Join, tok, join.Request{
			Role: pki.RoleServer, Name: cfg.Name, IPs: ips, DNSNames: []string{"localhost"}, PeerURL: cfg.peerURL(),
		}, cfg.pkiDir())
		if err != nil {
			return nil, err
		}
		st.InitialCluster, st.ClusterState, st.Endpoints = resp.InitialCluster, "existing", resp.EtcdEndpoints
		cfg.Log.Info("joined cluster", "via", cfg.Join)
	} else {
		ca, err := pki.LoadCA(cfg.pkiDir())
		if errors.Is(err, pki.ErrNoCA) {
			if ca, err = pki.NewCA(cfg.Name); err == nil {
				err = ca.Save(cfg.pkiDir())
			}
			cfg.Log.Info("created cluster CA", "fingerprint", ca.Fingerprint())
		}
		if err != nil {
			return nil, err
		}
		req := pki.Request{CommonName: cfg.Name, Role: pki.RoleServer, DNSNames: []string{"localhost"}}
		for _, ip := range ips {
			req.IPs = append(req.IPs, net.ParseIP(ip))
		}
		if err := ca.Issue(cfg.pkiDir(), req); err != nil {
			return nil, err
		}
	}
	return st, cfg.saveState(st)
}

func (s *Server) memberErr() <-chan error {
	if s.member == nil {
		return nil
	}
	return s.member.Err()
}

// Addr returns the API listener's address.
func (s *Server) Addr() string { return s.apiLn.Addr().String() }

// Name returns the server's name.
func (s *Server) Name() string { return s.cfg.Name }

// Member returns the embedded etcd member, or nil with an external etcd.
func (s *Server) Member() *store.Member { return s.member }

// Done is closed when the server stops by itself (its etcd member failed)
// or has been closed.
func (s *Server) Done() <-chan struct{} { return s.stopped }

// Close stops the endpoints, then the etcd member; closing twice is harmless.
func (s *Server) Close() error {
	s.closeOnce.Do(s.close)
	return nil
}

func (s *Server) close() {
	if s.api != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s.api.Shutdown(ctx)
		cancel()
	}
	if s.stop != nil {
		s.stop()
	}
	if s.DNS != nil {
		s.DNS.Close()
	}
	if s.Git != nil {
		s.Git.Close()
	}
	if s.Client != nil {
		s.Client.Close()
	}
	if s.member != nil {
		s.member.Close()
	}
}

// startController opens the blobstore, makes sure the cluster has an API
// key, and starts the controller's caches.
func (s *Server) startController(ctx, runCtx context.Context) error {
	var err error
	if s.Blobs, err = blobstore.New(s.cfg.blobDir()); err != nil {
		return err
	}
	if s.Replica, err = s.newReplica(); err != nil {
		return err
	}
	if s.AdminKey, err = controller.BootstrapKey(ctx, s.Client, s.cfg.AdminKeyPath()); err != nil {
		return err
	}
	s.Controller = controller.New(controller.Config{
		Client: s.Client, Blobs: s.Blobs, BlobURL: "https://" + s.cfg.APIAddr(), Replica: s.Replica,
		HostTLS: s.Creds.ClientConfig(), Log: s.cfg.Log, AppURL: s.cfg.AppURL, Disk: s.Disk, ServerName: s.Name(),
		TCPPortRange: s.cfg.TCPPortRange, BuildCA: s.CA.CertPEM,
		CADir: s.cfg.pkiDir(), AdminKeyFile: s.cfg.AdminKeyPath(), LeaderDead: s.deadServer,
		RegistryUploadDir: filepath.Join(s.cfg.DataDir, "registry-uploads"),
	})
	go s.Controller.Run(runCtx)
	select {
	case <-s.Controller.Ready():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Server) serveAPI() error {
	ln, err := net.Listen("tcp", s.cfg.APIAddr())
	if err != nil {
		return fmt.Errorf("server: API listener: %w", err)
	}
	s.apiLn = ln
	mux := http.NewServeMux()
	mux.Handle(join.Path, &join.Handler{
		CA: s.CA, ServerToken: s.ServerToken, HostToken: s.HostToken,
		Members: membership{s.Client}, Log: s.cfg.Log,
	})
	s.Controller.Register(mux)
	mux.Handle("/git/", s.Git.HTTPHandler())
	ops := s.Health.Handler(s.cfg.Registry)
	for _, p := range []string{"/livez", "/readyz", "/metrics"} {
		mux.Handle(p, ops)
	}
	// The dashboard takes the root and its sign-in paths; everything else,
	// its own API calls included, goes on to mux.
	dash := dashboard.New(dashboard.Config{Client: s.Client, Keys: s.Controller, Log: s.cfg.Log})
	s.api = &http.Server{
		Handler:           dash.Wrap(mux),
		TLSConfig:         s.Creds.ServerConfig(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          nil,
	}
	go s.api.ServeTLS(ln, "", "")
	return nil
}
