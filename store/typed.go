package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	clientv3 "go.etcd.io/etcd/client/v3"
)

var (
	// ErrNotFound: the key does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrExists: a create found the key already there.
	ErrExists = errors.New("store: already exists")
	// ErrConflict: a guarded key's revision moved since it was read; re-read
	// and try again. Errors carrying it are usually *ConflictError.
	ErrConflict = errors.New("store: revision conflict")
	// ErrTxnTooLarge: a transaction has more than MaxTxnOps operations.
	ErrTxnTooLarge = errors.New("store: transaction too large")
)

// listPageSize bounds each range response of List so that a huge prefix is
// read in pieces rather than as one response of unbounded size.
const listPageSize = 500

// Item is a decoded value with the revisions a caller needs to guard a
// later write (ModRevision) or to tell a re-created key apart
// (CreateRevision).
type Item[T any] struct {
	Key            string
	Value          T
	ModRevision    int64
	CreateRevision int64
}

// Option modifies a write.
type Option func(*writeOptions)

type writeOptions struct {
	lease clientv3.LeaseID
}

// WithLease binds the key to a lease, so that etcd deletes it when the
// lease expires (host records, service instances). A write without it
// detaches the key from any lease it had: owners of lease-bound keys must
// pass it on every write.
func WithLease(id clientv3.LeaseID) Option {
	return func(o *writeOptions) { o.lease = id }
}

func putOp(key string, v any, opts []Option) (clientv3.Op, error) {
	var o writeOptions
	for _, opt := range opts {
		opt(&o)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return clientv3.Op{}, fmt.Errorf("store: encode %s: %w", key, err)
	}
	var ops []clientv3.OpOption
	if o.lease != clientv3.NoLease {
		ops = append(ops, clientv3.WithLease(o.lease))
	}
	return clientv3.OpPut(key, string(b), ops...), nil
}

// Get reads and decodes key, returning its ModRevision for a later Update.
// A missing key is ErrNotFound.
func Get[T any](ctx context.Context, kv clientv3.KV, key string) (T, int64, error) {
	var v T
	resp, err := kv.Get(ctx, key)
	if err != nil {
		return v, 0, fmt.Errorf("store: get %s: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return v, 0, fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	if err := json.Unmarshal(resp.Kvs[0].Value, &v); err != nil {
		return v, 0, fmt.Errorf("store: decode %s: %w", key, err)
	}
	return v, resp.Kvs[0].ModRevision, nil
}

// List reads every key under prefix, in key order, as one consistent
// snapshot at the returned revision: the first page fixes the revision and
// later pages read at it. Values that do not decode are skipped with a
// warning, so that one corrupt object cannot blind every control loop.
func List[T any](ctx context.Context, kv clientv3.KV, prefix string) ([]Item[T], int64, error) {
	end := clientv3.GetPrefixRangeEnd(prefix)
	var (
		items []Item[T]
		rev   int64
		from  = prefix
	)
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(listPageSize)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := kv.Get(ctx, from, opts...)
		if err != nil {
			return nil, 0, fmt.Errorf("store: list %s: %w", prefix, err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for _, kv := range resp.Kvs {
			it := Item[T]{Key: string(kv.Key), ModRevision: kv.ModRevision, CreateRevision: kv.CreateRevision}
			if err := json.Unmarshal(kv.Value, &it.Value); err != nil {
				slog.Warn("store: skipping undecodable value", "key", it.Key, "err", err)
				continue
			}
			items = append(items, it)
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return items, rev, nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// Put writes key unconditionally and returns the write's revision, which is
// the key's new ModRevision.
func Put(ctx context.Context, kv clientv3.KV, key string, v any, opts ...Option) (int64, error) {
	op, err := putOp(key, v, opts)
	if err != nil {
		return 0, err
	}
	resp, err := kv.Do(ctx, op)
	if err != nil {
		return 0, fmt.Errorf("store: put %s: %w", key, err)
	}
	return resp.Put().Header.Revision, nil
}

// Create writes key if it does not exist (ErrExists otherwise) and returns
// its ModRevision.
func Create(ctx context.Context, kv clientv3.KV, key string, v any, opts ...Option) (int64, error) {
	return Txn().Create(key, v, opts...).Commit(ctx, kv)
}

// GetOrCreate reads key, or, if it does not exist, stores what make
// returns there; when several callers race, all get the first one's value.
// It is how the cluster keeps a value every node must share and any node
// may be first to need (a host key, a signing key).
func GetOrCreate[T any](ctx context.Context, kv clientv3.KV, key string, make func() (T, error)) (T, error) {
	for {
		v, _, err := Get[T](ctx, kv, key)
		if !errors.Is(err, ErrNotFound) {
			return v, err
		}
		if v, err = make(); err != nil {
			return v, err
		}
		if _, err := Create(ctx, kv, key, v); err == nil || !errors.Is(err, ErrExists) {
			return v, err
		}
	}
}

// Update writes key if its ModRevision is still modRev, and returns the new
// one. It fails with ErrConflict if the key changed, and also with
// ErrNotFound if it was deleted.
func Update(ctx context.Context, kv clientv3.KV, key string, v any, modRev int64, opts ...Option) (int64, error) {
	return Txn().Update(key, v, modRev, opts...).Commit(ctx, kv)
}

// Delete removes key. Deleting a missing key is not an error: the caller's
// intent, that the key be gone, holds.
func Delete(ctx context.Context, kv clientv3.KV, key string) error {
	if _, err := kv.Delete(ctx, key); err != nil {
		return fmt.Errorf("store: delete %s: %w", key, err)
	}
	return nil
}

// DeleteIf removes key if its ModRevision is still modRev; it fails like
// Update otherwise.
func DeleteIf(ctx context.Context, kv clientv3.KV, key string, modRev int64) error {
	_, err := Txn().Delete(key, modRev).Commit(ctx, kv)
	return err
}
