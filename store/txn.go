package store

import (
	"context"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// MaxTxnOps is etcd's default limit (--max-txn-ops) on the guards, and
// separately on the writes, of one transaction. pier's members run with the
// default; callers with more to write split their work into batches of
// Tx.Len() <= MaxTxnOps and give up atomicity across batches.
const MaxTxnOps = 128

// Tx is a multi-key transaction guarded by revisions: it commits all of its
// writes only if every guarded key still has the ModRevision its caller
// read, and none of them otherwise. A guard of revision 0 means "the key
// does not exist". Build one with Txn; methods chain and record the first
// error, which Commit returns.
type Tx struct {
	guards []guard
	ops    []clientv3.Op
	writes map[string]bool
	err    error
}

type guard struct {
	key string
	rev int64
}

// Txn starts an empty transaction; the zero Tx is one too.
func Txn() *Tx { return &Tx{} }

// Create writes key if it does not exist.
func (t *Tx) Create(key string, v any, opts ...Option) *Tx {
	return t.guard(key, 0).put(key, v, opts)
}

// Update writes key if its ModRevision is still modRev.
func (t *Tx) Update(key string, v any, modRev int64, opts ...Option) *Tx {
	return t.guard(key, modRev).put(key, v, opts)
}

// Put writes key whatever its revision (still only if the guards hold).
func (t *Tx) Put(key string, v any, opts ...Option) *Tx {
	return t.put(key, v, opts)
}

// Delete removes key if its ModRevision is still modRev.
func (t *Tx) Delete(key string, modRev int64) *Tx {
	t.guard(key, modRev)
	if t.write(key) {
		t.ops = append(t.ops, clientv3.OpDelete(key))
	}
	return t
}

// Unchanged guards key without writing it: the transaction commits only if
// what the caller decided from still holds (a host it placed on, a formation
// it read).
func (t *Tx) Unchanged(key string, modRev int64) *Tx { return t.guard(key, modRev) }

// Len is the transaction's size as etcd counts it against MaxTxnOps.
func (t *Tx) Len() int { return max(len(t.guards), len(t.ops)) }

func (t *Tx) guard(key string, rev int64) *Tx {
	t.guards = append(t.guards, guard{key, rev})
	return t
}

func (t *Tx) put(key string, v any, opts []Option) *Tx {
	if !t.write(key) {
		return t
	}
	op, err := putOp(key, v, opts)
	if err != nil {
		t.fail(err)
		return t
	}
	t.ops = append(t.ops, op)
	return t
}

// write claims key for one write: etcd rejects a transaction that writes a
// key twice, and reports it less clearly.
func (t *Tx) write(key string) bool {
	if t.writes == nil {
		t.writes = map[string]bool{}
	}
	if t.writes[key] {
		t.fail(fmt.Errorf("store: transaction writes %s twice", key))
		return false
	}
	t.writes[key] = true
	return true
}

func (t *Tx) fail(err error) {
	if t.err == nil {
		t.err = err
	}
}

// Commit runs the transaction and returns its revision, which is the new
// ModRevision of every key it wrote. When a guard fails it returns a
// *ConflictError naming the key (errors.Is ErrConflict) and writes nothing.
func (t *Tx) Commit(ctx context.Context, kv clientv3.KV) (int64, error) {
	if t.err != nil {
		return 0, t.err
	}
	if n := t.Len(); n > MaxTxnOps {
		return 0, fmt.Errorf("%w: %d operations, limit %d", ErrTxnTooLarge, n, MaxTxnOps)
	}
	if t.Len() == 0 {
		return 0, nil
	}
	cmps := make([]clientv3.Cmp, len(t.guards))
	// On failure, read the guarded keys' revisions in the same transaction
	// so that the conflict names the key that moved without a second,
	// racy, round trip.
	var keys []string
	seen := map[string]bool{}
	for i, g := range t.guards {
		cmps[i] = clientv3.Compare(clientv3.ModRevision(g.key), "=", g.rev)
		if !seen[g.key] {
			seen[g.key] = true
			keys = append(keys, g.key)
		}
	}
	reads := make([]clientv3.Op, len(keys))
	for i, k := range keys {
		reads[i] = clientv3.OpGet(k, clientv3.WithKeysOnly())
	}
	resp, err := kv.Txn(ctx).If(cmps...).Then(t.ops...).Else(reads...).Commit()
	if errors.Is(err, rpctypes.ErrTooManyOps) {
		return 0, fmt.Errorf("%w: %d operations, refused by etcd: %v", ErrTxnTooLarge, t.Len(), err)
	}
	if err != nil {
		return 0, fmt.Errorf("store: txn: %w", err)
	}
	if resp.Succeeded {
		return resp.Header.Revision, nil
	}
	have := map[string]int64{}
	for i, r := range resp.Responses {
		if kvs := r.GetResponseRange().GetKvs(); len(kvs) > 0 {
			have[keys[i]] = kvs[0].ModRevision
		}
	}
	for _, g := range t.guards {
		if have[g.key] != g.rev {
			return 0, &ConflictError{Key: g.key, Want: g.rev, Have: have[g.key]}
		}
	}
	return 0, ErrConflict
}

// ConflictError is a failed guard. It is ErrConflict, and also ErrExists
// when the key was to be absent, or ErrNotFound when it was to be present.
type ConflictError struct {
	Key  string
	Want int64 // the ModRevision guarded; 0: absent
	Have int64 // the ModRevision found; 0: absent
}

func (e *ConflictError) Error() string {
	switch {
	case e.Want == 0:
		return fmt.Sprintf("store: %s already exists (revision %d)", e.Key, e.Have)
	case e.Have == 0:
		return fmt.Sprintf("store: %s not found (want revision %d)", e.Key, e.Want)
	}
	return fmt.Sprintf("store: %s changed: revision %d, want %d", e.Key, e.Have, e.Want)
}

// Is lets callers test a conflict against the package's sentinels.
func (e *ConflictError) Is(target error) bool {
	switch target {
	case ErrConflict:
		return true
	case ErrExists:
		return e.Want == 0 && e.Have != 0
	case ErrNotFound:
		return e.Want != 0 && e.Have == 0
	}
	return false
}
