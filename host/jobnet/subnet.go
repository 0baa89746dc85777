package jobnet

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/store"
)

// SubnetFor returns node's subnet of the cluster range, allocating one the
// first time: a free /24 chosen at random (so that clusters sharing a
// machine in tests rarely try the same one first), skipping any that
// inUse reports (a range this machine already routes), claimed by a
// transaction that creates both the node's record and the subnet's, so
// two nodes never hold the same one. It records underlay as the node's
// address, updating it if the node moved.
func SubnetFor(ctx context.Context, kv clientv3.KV, cluster netip.Prefix, node, underlay string, inUse func(netip.Prefix) bool) (netip.Prefix, error) {
	nodeKey, err := store.Key(store.NetNodesPrefix, node)
	if err != nil {
		return netip.Prefix{}, err
	}
	for attempt := 0; attempt < 8; attempt++ {
		have, rev, err := store.Get[api.NodeNetwork](ctx, kv, nodeKey)
		switch {
		case err == nil:
			p, perr := netip.ParsePrefix(have.Subnet)
			if perr != nil {
				return netip.Prefix{}, fmt.Errorf("jobnet: node %s has subnet %q: %w", node, have.Subnet, perr)
			}
			if have.Underlay != underlay {
				have.Underlay = underlay
				if _, err := store.Update(ctx, kv, nodeKey, have, rev); err != nil && !errors.Is(err, store.ErrConflict) {
					return netip.Prefix{}, err
				}
			}
			return p, nil
		case !errors.Is(err, store.ErrNotFound):
			return netip.Prefix{}, err
		}
		taken, _, err := store.List[api.NodeNetwork](ctx, kv, store.NetNodesPrefix)
		if err != nil {
			return netip.Prefix{}, err
		}
		used := map[netip.Prefix]bool{}
		for _, it := range taken {
			if p, err := netip.ParsePrefix(it.Value.Subnet); err == nil {
				used[p] = true
			}
		}
		p, ok := pickSubnet(cluster, api.JobSubnetBits, func(p netip.Prefix) bool { return used[p] || inUse != nil && inUse(p) })
		if !ok {
			return netip.Prefix{}, fmt.Errorf("jobnet: no free /%d left in %s", api.JobSubnetBits, cluster)
		}
		rec := api.NodeNetwork{Node: node, Subnet: p.String(), Underlay: underlay, Created: time.Now().UTC()}
		subnetKey, err := store.Key(store.NetSubnetsPrefix, subnetKeyPart(p))
		if err != nil {
			return netip.Prefix{}, err
		}
		_, err = store.Txn().Create(nodeKey, rec).Create(subnetKey, node).Commit(ctx, kv)
		if err == nil {
			return p, nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return netip.Prefix{}, err
		}
		// Another node took it, or this node's record appeared: look again.
	}
	return netip.Prefix{}, fmt.Errorf("jobnet: could not claim a subnet for %s: too much contention", node)
}

func subnetKeyPart(p netip.Prefix) string {
	return strings.ReplaceAll(p.String(), "/", "-")
}

// pickSubnet returns a subnet of cluster with the given bits that taken
// does not refuse, starting at a random one.
func pickSubnet(cluster netip.Prefix, bits int, taken func(netip.Prefix) bool) (netip.Prefix, bool) {
	cluster = cluster.Masked()
	if bits < cluster.Bits() || bits > 30 || !cluster.Addr().Is4() {
		return netip.Prefix{}, false
	}
	n := 1 << (bits - cluster.Bits())
	base := cluster.Addr().As4()
	baseInt := uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8 | uint32(base[3])
	start := rand.IntN(n)
	for i := range n {
		idx := uint32((start + i) % n)
		v := baseInt + idx<<(32-bits)
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), bits)
		if !taken(p) {
			return p, true
		}
	}
	return netip.Prefix{}, false
}
