package discovery

import (
	"context"
	"fmt"

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
