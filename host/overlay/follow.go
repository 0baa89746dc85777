package overlay

import (
	"context"
	"log/slog"
	"net/netip"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/store"
)

// Follow keeps o in step with the cluster's node records
// (/pier/net/nodes/) until ctx ends: a watch, so a node that joins is
// reachable as soon as its record is written. Failures are logged and
// retried on the next change; Sync repairs whatever drifted.
func Follow(ctx context.Context, client *clientv3.Client, o *Overlay, log *slog.Logger) {
	if log == nil {
		log = slog.Default()
	}
	nodes := store.NewCache[api.NodeNetwork](client, store.NetNodesPrefix)
	changed, cancel := nodes.Subscribe()
	defer cancel()
	go nodes.Run(ctx)
	select {
	case <-nodes.Synced():
	case <-ctx.Done():
		return
	}
	for {
		var peers []Node
		for _, it := range nodes.List() {
			n, ok := NodeOf(it.Value)
			if ok && n.Name != o.self.Name {
				peers = append(peers, n)
			}
		}
		if err := o.Sync(peers); err != nil {
			log.Warn("overlay: cannot reach every node", "err", err)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return
		}
	}
}

// NodeOf reads a node record; false if it is malformed.
func NodeOf(r api.NodeNetwork) (Node, bool) {
	subnet, err := netip.ParsePrefix(r.Subnet)
	if err != nil {
		return Node{}, false
	}
	underlay, err := netip.ParseAddr(r.Underlay)
	if err != nil {
		return Node{}, false
	}
	return Node{Name: r.Node, Underlay: underlay, Subnet: subnet}, true
}
