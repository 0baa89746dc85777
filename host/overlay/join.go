package overlay

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pierpaas/pier/host/jobnet"
)

// Join gives node its subnet of the cluster range (allocating it the first
// time) and keeps the overlay to every other node until ctx ends. Every
// node that talks to jobs joins: hosts (which run them), routers (which
// proxy to them) and servers (which reach resources' members). It does
// nothing, and returns an invalid prefix, when not run as root, since
// only root can make the device.
func Join(ctx context.Context, client *clientv3.Client, node, underlay, cluster string, log *slog.Logger) (netip.Prefix, error) {
	if os.Geteuid() != 0 {
		return netip.Prefix{}, nil
	}
	if log == nil {
		log = slog.Default()
	}
	rng, err := netip.ParsePrefix(cluster)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("overlay: cluster range %q: %w", cluster, err)
	}
	subnet, err := jobnet.SubnetFor(ctx, client, rng, node, underlay, jobnet.LocallyRouted)
	if err != nil {
		return netip.Prefix{}, err
	}
	return subnet, Start(ctx, client, node, underlay, subnet, log)
}

// Start keeps the overlay of a node whose subnet is known (the host agent
// remembers its own) until ctx ends.
func Start(ctx context.Context, client *clientv3.Client, node, underlay string, subnet netip.Prefix, log *slog.Logger) error {
	ip, err := netip.ParseAddr(underlay)
	if err != nil {
		return fmt.Errorf("overlay: underlay %q: %w", underlay, err)
	}
	o, err := New(Config{Self: Node{Name: node, Underlay: ip, Subnet: subnet}, Log: log})
	if err != nil {
		return err
	}
	go Follow(ctx, client, o, log)
	return nil
}
