package store

import (
	"context"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/pierpaas/pier/internal/pki"
)

// Dial connects to etcd with the node's client certificate. It does not
// wait for a connection: the client reconnects by itself, and the first
// request fails if no endpoint answers.
func Dial(endpoints []string, creds *pki.Credentials) (*clientv3.Client, error) {
	if len(endpoints) == 0 {
		return nil, fmt.Errorf("store: no etcd endpoints")
	}
	tlsCfg := creds.ClientConfig()
	// The node certificate carries the CA in its chain for the join
	// protocol; etcd needs only the leaf.
	tlsCfg.Certificates[0].Certificate = tlsCfg.Certificates[0].Certificate[:1]
	c, err := clientv3.New(clientv3.Config{
		Endpoints:            endpoints,
		TLS:                  tlsCfg,
		DialTimeout:          5 * time.Second,
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: 3 * time.Second,
		AutoSyncInterval:     30 * time.Second,
		Logger:               zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("store: dial etcd: %w", err)
	}
	return c, nil
}

// WaitReady blocks until etcd answers a linearizable read or ctx ends.
func WaitReady(ctx context.Context, c *clientv3.Client) error {
	for {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := c.Get(rctx, "/pier/ready-probe")
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("store: etcd not ready: %w", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
