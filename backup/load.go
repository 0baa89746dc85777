package backup

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pierpaas/pier/store"
)

// maxBatchBytes keeps a batch under etcd's default request limit (1.5
// MiB) with room for the request's own framing.
const maxBatchBytes = 1 << 20

// Load writes kvs into the store in batches of plain puts. It is not
// atomic, but it is idempotent: a load cut short is made again whole,
// which is why the server loads before anything else writes (the
// controller, the scheduler, the agents) and forgets the restore only
// once Load has returned.
func Load(ctx context.Context, kv clientv3.KV, kvs []KV) error {
	var ops []clientv3.Op
	size := 0
	flush := func() error {
		if len(ops) == 0 {
			return nil
		}
		if _, err := kv.Txn(ctx).Then(ops...).Commit(); err != nil {
			return fmt.Errorf("backup: load the store: %w", err)
		}
		ops, size = ops[:0], 0
		return nil
	}
	for _, p := range kvs {
		n := len(p.Key) + len(p.Value)
		if len(ops) == store.MaxTxnOps || (size+n > maxBatchBytes && len(ops) > 0) {
			if err := flush(); err != nil {
				return err
			}
		}
		ops = append(ops, clientv3.OpPut(p.Key, string(p.Value)))
		size += n
	}
	return flush()
}
