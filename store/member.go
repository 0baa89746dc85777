package store

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"

	"github.com/pierpaas/pier/internal/pki"
)

// MemberConfig describes one embedded etcd member.
type MemberConfig struct {
	Name    string
	DataDir string
	// Creds secure both the client and the peer port: etcd requires a
	// certificate signed by the cluster CA on each, loopback included,
	// because jobs may share the host's network.
	Creds *pki.Credentials
	// ClientURL and PeerURL are advertised to others; ListenClientURL and
	// ListenPeerURL default to them (set them to bind 0.0.0.0).
	ClientURL, PeerURL             string
	ListenClientURL, ListenPeerURL string
	// InitialCluster is "name=peerURL,..."; ClusterState is "new" to
	// bootstrap or "existing" to join. Both are ignored once DataDir holds
	// a member: a restart always resumes from disk.
	InitialCluster string
	ClusterState   string
	// LogLevel is etcd's own (zap) level; "error" unless set.
	LogLevel string
	// ReadyTimeout bounds the wait for the member to join raft.
	ReadyTimeout time.Duration
}

// Member is a running embedded etcd member.
type Member struct {
	etcd      *embed.Etcd
	cfg       MemberConfig
	closeOnce sync.Once
}

// StartMember starts an embedded etcd member and waits until it serves.
func StartMember(ctx context.Context, mc MemberConfig) (*Member, error) {
	cfg := embed.NewConfig()
	cfg.Name = mc.Name
	cfg.Dir = mc.DataDir
	cfg.LogLevel = mc.LogLevel
	if cfg.LogLevel == "" {
		cfg.LogLevel = "error"
	}
	cfg.Logger = "zap"
	lg, err := etcdLogger(cfg.LogLevel)
	if err != nil {
		return nil, err
	}
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(lg)
	if cfg.AdvertiseClientUrls, err = parseURLs(mc.ClientURL); err != nil {
		return nil, err
	}
	if cfg.AdvertisePeerUrls, err = parseURLs(mc.PeerURL); err != nil {
		return nil, err
	}
	if cfg.ListenClientUrls, err = parseURLs(first(mc.ListenClientURL, mc.ClientURL)); err != nil {
		return nil, err
	}
	if cfg.ListenPeerUrls, err = parseURLs(first(mc.ListenPeerURL, mc.PeerURL)); err != nil {
		return nil, err
	}
	cfg.InitialCluster = first(mc.InitialCluster, mc.Name+"="+mc.PeerURL)
	cfg.ClusterState = first(mc.ClusterState, embed.ClusterStateFlagNew)
	cfg.InitialClusterToken = "pier"
	for _, info := range []*transport.TLSInfo{&cfg.ClientTLSInfo, &cfg.PeerTLSInfo} {
		info.CertFile = mc.Creds.CertPath()
		info.KeyFile = mc.Creds.KeyPath()
		info.TrustedCAFile = mc.Creds.CAPath()
		info.ClientCertAuth = true
	}
	// Keep an hour of history for watchers that reconnect; older revisions
	// are compacted so the database stays small.
	cfg.AutoCompactionMode = "periodic"
	cfg.AutoCompactionRetention = "1h"
	cfg.StrictReconfigCheck = true

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("store: start etcd member %s: %w", mc.Name, err)
	}
	timeout := mc.ReadyTimeout
	if timeout == 0 {
		timeout = time.Minute
	}
	select {
	case <-e.Server.ReadyNotify():
		return &Member{etcd: e, cfg: mc}, nil
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("store: etcd member %s: %w", mc.Name, err)
	case <-ctx.Done():
		e.Close()
		return nil, ctx.Err()
	case <-time.After(timeout):
		e.Close()
		return nil, fmt.Errorf("store: etcd member %s not ready after %s", mc.Name, timeout)
	}
}

// Name returns the member's name.
func (m *Member) Name() string { return m.cfg.Name }

// ID returns the member's raft id.
func (m *Member) ID() uint64 { return uint64(m.etcd.Server.MemberID()) }

// ClientURL returns the advertised client URL.
func (m *Member) ClientURL() string { return m.cfg.ClientURL }

// IsLeader reports whether this member currently leads raft.
func (m *Member) IsLeader() bool {
	return m.etcd.Server.Leader() == m.etcd.Server.MemberID()
}

// Err delivers a fatal error of the member, if any.
func (m *Member) Err() <-chan error { return m.etcd.Err() }

// Stopped is closed once the member has stopped.
func (m *Member) Stopped() <-chan struct{} { return m.etcd.Server.StopNotify() }

// Close stops the member; closing twice is harmless.
func (m *Member) Close() { m.closeOnce.Do(m.etcd.Close) }

func parseURLs(s string) ([]url.URL, error) {
	if s == "" {
		return nil, errors.New("store: missing URL")
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("store: bad URL %q: %w", s, err)
	}
	if u.Scheme != "https" {
		return nil, fmt.Errorf("store: URL %q must use https", s)
	}
	return []url.URL{*u}, nil
}

func first(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
