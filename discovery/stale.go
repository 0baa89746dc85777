package discovery

import (
	"context"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// DropLease deregisters the instances registered on lease for which keep
// returns false, and returns how many it removed. It is for a process
// that restarted and knows which of its previous run's instances died
// with it (a host agent after a reboot): etcd restores leases with a
// fresh TTL when it restarts too, so without this those instances would
// stay listed, and routed to, for a whole TTL after everything is back.
// An instance registered again meanwhile (on another lease) is left
// alone.
func (r *Registry) DropLease(ctx context.Context, lease clientv3.LeaseID, keep func(Instance) bool) (int, error) {
	resp, err := r.client.Get(ctx, r.cfg.servicesPrefix(), clientv3.WithPrefix())
	if err != nil {
		return 0, fmt.Errorf("discovery: list instances: %w", err)
	}
	dropped := 0
	for _, kv := range resp.Kvs {
		if clientv3.LeaseID(kv.Lease) != lease {
			continue
		}
		service, id, ok := r.cfg.splitKey(string(kv.Key))
		if !ok {
			continue
		}
		if inst, err := decode(service, id, kv); err == nil && keep(inst) {
			continue
		}
		key := string(kv.Key)
		t, err := r.client.Txn(ctx).
			If(clientv3.Compare(clientv3.LeaseValue(key), "=", lease)).
			Then(clientv3.OpDelete(key)).Commit()
		if err != nil {
			return dropped, fmt.Errorf("discovery: deregister %s/%s: %w", service, id, err)
		}
		if t.Succeeded {
			dropped++
		}
	}
	return dropped, nil
}

// Evict revokes the lease of service's instance id, for a process that
// knows the instance's owner died (a standby taking over from a dead
// leader): the instance, and every key on its lease, go at once rather
// than when the lease expires. An owner that is alive after all sees
// its lease lost and registers again, at the end of the leader line. It
// reports whether the instance was there.
func (r *Registry) Evict(ctx context.Context, service, id string) (bool, error) {
	resp, err := r.client.Get(ctx, r.cfg.instanceKey(service, id))
	if err != nil {
		return false, fmt.Errorf("discovery: evict %s/%s: %w", service, id, err)
	}
	if len(resp.Kvs) == 0 || resp.Kvs[0].Lease == 0 {
		return false, nil
	}
	if _, err := r.client.Revoke(ctx, clientv3.LeaseID(resp.Kvs[0].Lease)); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return false, fmt.Errorf("discovery: evict %s/%s: %w", service, id, err)
	}
	return true, nil
}
