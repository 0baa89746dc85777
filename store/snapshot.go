package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

	bolt "go.etcd.io/bbolt"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
)

// ErrBadSnapshot: a file is not an intact etcd snapshot.
var ErrBadSnapshot = errors.New("store: bad etcd snapshot")

// SnapshotKV is one live key of a snapshot. Lease is the lease it was
// bound to (0: none), which means nothing outside the snapshot's cluster.
type SnapshotKV struct {
	Key         string
	Value       []byte
	Lease       int64
	ModRevision int64
}

// Snapshot streams a consistent snapshot of the member the client picks
// (etcd's Maintenance.Snapshot: the whole backend at one revision, with
// etcd's own SHA-256 appended) to w, and returns the member's version.
// The snapshot is what `etcdutl snapshot restore` takes as well.
func Snapshot(ctx context.Context, c *clientv3.Client, w io.Writer) (string, int64, error) {
	resp, err := c.SnapshotWithVersion(ctx)
	if err != nil {
		return "", 0, fmt.Errorf("store: snapshot: %w", err)
	}
	defer resp.Snapshot.Close()
	n, err := io.Copy(w, resp.Snapshot)
	if err != nil {
		return "", n, fmt.Errorf("store: snapshot: %w", err)
	}
	if !hasSnapshotHash(n) {
		return "", n, fmt.Errorf("%w: %d bytes, no checksum at the end", ErrBadSnapshot, n)
	}
	return resp.Version, n, nil
}

// hasSnapshotHash is etcd's own test (client/v3/snapshot): a backend is
// a whole number of 512-byte sectors, so 32 bytes more is the hash.
func hasSnapshotHash(n int64) bool { return n%512 == sha256.Size }

// etcd's on-disk layout (server/storage/schema and mvcc): bucket "key"
// maps a revision (8 bytes main, '_', 8 bytes sub, then 't' for a
// deletion) to an mvccpb.KeyValue. Keys sort by revision.
var keyBucket = []byte("key")

const (
	revBytesLen    = 17
	tombstoneBytes = revBytesLen + 1
)

// ReadSnapshot returns the live keys of the snapshot file at path (the
// newest version of each key not deleted), sorted by key. The file's
// trailing SHA-256 is checked first. The file is not changed: bbolt
// reads a private copy, since it would otherwise want to write it.
func ReadSnapshot(path string) ([]SnapshotKV, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !hasSnapshotHash(fi.Size()) {
		return nil, fmt.Errorf("%w: %d bytes, no checksum at the end", ErrBadSnapshot, fi.Size())
	}
	tmp, err := os.CreateTemp("", "pier-snapshot-*.db")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	h := sha256.New()
	dbSize := fi.Size() - sha256.Size
	if _, err := io.CopyN(io.MultiWriter(tmp, h), f, dbSize); err != nil {
		return nil, err
	}
	want := make([]byte, sha256.Size)
	if _, err := io.ReadFull(f, want); err != nil {
		return nil, err
	}
	if !bytes.Equal(h.Sum(nil), want) {
		return nil, fmt.Errorf("%w: its checksum does not match", ErrBadSnapshot)
	}
	if err := tmp.Close(); err != nil {
		return nil, err
	}
	return readBackend(tmp.Name())
}

func readBackend(path string) ([]SnapshotKV, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSnapshot, err)
	}
	defer db.Close()
	live := map[string]*mvccpb.KeyValue{}
	var order []string
	err = db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(keyBucket)
		if b == nil {
			return fmt.Errorf("%w: no key bucket", ErrBadSnapshot)
		}
		return b.ForEach(func(rev, v []byte) error {
			if len(rev) != revBytesLen && len(rev) != tombstoneBytes {
				return fmt.Errorf("%w: revision of %d bytes", ErrBadSnapshot, len(rev))
			}
			kv := &mvccpb.KeyValue{}
			if err := proto.Unmarshal(v, kv); err != nil {
				return fmt.Errorf("%w: %v", ErrBadSnapshot, err)
			}
			k := string(kv.Key)
			if len(rev) == tombstoneBytes && rev[revBytesLen] == 't' {
				delete(live, k)
				return nil
			}
			if _, seen := live[k]; !seen {
				order = append(order, k)
			}
			live[k] = kv
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(order)
	out := make([]SnapshotKV, 0, len(live))
	for _, k := range order {
		if kv, ok := live[k]; ok {
			out = append(out, SnapshotKV{Key: k, Value: kv.Value, Lease: kv.Lease, ModRevision: kv.ModRevision})
			delete(live, k) // a key deleted and made again is listed once
		}
	}
	return out, nil
}
