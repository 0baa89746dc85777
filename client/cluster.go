package client

import (
	"errors"
	"fmt"
	"log/slog"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pierpaas/pier/discovery"
	"github.com/pierpaas/pier/internal/pki"
	"github.com/pierpaas/pier/store"
)

// Config says where the cluster is and which credentials to use.
type Config struct {
	// Endpoints are etcd client URLs (https://host:2379).
	Endpoints []string
	// CredentialsDir holds ca.crt, node.crt and node.key, as written by
	// `pier server` or a host agent into <data-dir>/pki.
	CredentialsDir string
	Logger         *slog.Logger
}

// Cluster is a connection to a cluster's shared state.
type Cluster struct {
	// Etcd is the raw store client, for programs that need more than
	// discovery (a custom scheduler, say).
	Etcd      *clientv3.Client
	Discovery *discovery.Registry
}

// Connect opens a connection; it does not wait for the cluster to answer.
func Connect(cfg Config) (*Cluster, error) {
	if cfg.CredentialsDir == "" {
		return nil, errors.New("client: no credentials directory")
	}
	creds, err := pki.LoadCredentials(cfg.CredentialsDir)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	etcd, err := store.Dial(cfg.Endpoints, creds)
	if err != nil {
		return nil, err
	}
	var opts []discovery.Option
	if cfg.Logger != nil {
		opts = append(opts, discovery.WithLogger(cfg.Logger))
	}
	return &Cluster{Etcd: etcd, Discovery: discovery.New(etcd, opts...)}, nil
}

// Close closes the connection; registrations made through it vanish when
// their leases expire.
func (c *Cluster) Close() error { return c.Etcd.Close() }
