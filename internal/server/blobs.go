package server

import (
	"context"
	"net"
	"net/http"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pierpaas/pier/blobstore/replica"
	"github.com/pierpaas/pier/store"
)

// blobCatchUp is how often a server makes sure it holds every kept blob
// even when nothing changed: after a partition, or when the only server
// that had a blob comes back.
const blobCatchUp = 30 * time.Second

// newReplica makes the replicator that copies blobs from the other
// servers, over their API ports, with this server's cluster certificate.
func (s *Server) newReplica() (*replica.Replicator, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = s.Creds.ClientConfig()
	// A server that is down must not hold a copy up for long: the next
	// one is tried.
	tr.DialContext = (&net.Dialer{Timeout: 3 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	tr.ResponseHeaderTimeout = 15 * time.Second
	m, err := replica.NewMetrics(s.cfg.Registry)
	if err != nil {
		return nil, err
	}
	return &replica.Replicator{
		Store: s.Blobs, Registry: s.reg,
		Self: s.cfg.Name, Client: &http.Client{Transport: tr}, Log: s.cfg.Log, Metrics: m,
	}, nil
}

// replicateBlobs keeps this server's blobstore holding every kept blob,
// until ctx ends: a pass whenever releases, builds or resource backups
// change, and every blobCatchUp.
func (s *Server) replicateBlobs(ctx context.Context) {
	changed := make(chan struct{}, 1)
	for _, prefix := range []string{store.ReleasesPrefix, store.BuildsPrefix, store.ResourceBackups, store.RegistryManifestsPrefix} {
		go func() {
			for ctx.Err() == nil {
				for range s.Client.Watch(clientv3.WithRequireLeader(ctx), prefix, clientv3.WithPrefix()) {
					select {
					case changed <- struct{}{}:
					default:
					}
				}
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
			}
		}()
	}
	s.Replica.Run(ctx, s.Controller.KeptBlobs, changed, blobCatchUp)
}
