package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Await reads key and follows its changes until done accepts what it
// holds, then returns that: the decoded value and whether the key exists.
// done sees every state the key passes through after the first read
// (none is skipped the way polling skips them), so a waiter cannot miss a
// short-lived state such as a job that ran and ended between two looks.
// It returns ctx's error, with the last value seen, when ctx ends first.
func Await[T any](ctx context.Context, client *clientv3.Client, key string, done func(v T, ok bool) bool) (T, bool, error) {
	var (
		v  T
		ok bool
	)
	for {
		// (Re)read: at the start, and after a watch that could not resume
		// (compacted history, a member without a leader).
		resp, err := client.Get(ctx, key)
		if err != nil {
			return v, ok, fmt.Errorf("store: get %s: %w", key, err)
		}
		if v, ok, err = decodeKV[T](key, resp.Kvs); err != nil {
			return v, ok, err
		}
		if done(v, ok) {
			return v, ok, nil
		}
		err = awaitWatch(ctx, client, key, resp.Header.Revision+1, func(kvs []*mvccKV) (bool, error) {
			for _, kv := range kvs {
				if v, ok, err = decodeOne[T](key, kv); err != nil {
					return true, err
				}
				if done(v, ok) {
					return true, nil
				}
			}
			return false, nil
		})
		if ctx.Err() != nil {
			return v, ok, ctx.Err()
		}
		if err == nil || !errors.Is(err, errWatchEnded) {
			return v, ok, err
		}
	}
}

// mvccKV is one state of a key in a watch: its value, or nil when deleted.
type mvccKV struct {
	value   []byte
	deleted bool
}

var errWatchEnded = errors.New("store: watch ended")

// awaitWatch feeds the key's states from revision from to step until step
// says stop. It returns errWatchEnded when the watch ends before that.
func awaitWatch(ctx context.Context, client *clientv3.Client, key string, from int64, step func([]*mvccKV) (bool, error)) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	for resp := range client.Watch(wctx, key, clientv3.WithRev(from)) {
		if resp.CompactRevision != 0 || resp.Err() != nil {
			return errWatchEnded
		}
		kvs := make([]*mvccKV, 0, len(resp.Events))
		for _, ev := range resp.Events {
			if ev.Type == clientv3.EventTypeDelete {
				kvs = append(kvs, &mvccKV{deleted: true})
			} else {
				kvs = append(kvs, &mvccKV{value: ev.Kv.Value})
			}
		}
		if stop, err := step(kvs); stop {
			return err
		}
	}
	return errWatchEnded
}

func decodeKV[T any](key string, kvs []*mvccpb.KeyValue) (T, bool, error) {
	if len(kvs) == 0 {
		var zero T
		return zero, false, nil
	}
	return decodeOne[T](key, &mvccKV{value: kvs[0].Value})
}

func decodeOne[T any](key string, kv *mvccKV) (T, bool, error) {
	var v T
	if kv.deleted {
		return v, false, nil
	}
	if err := json.Unmarshal(kv.value, &v); err != nil {
		return v, true, fmt.Errorf("store: decode %s: %w", key, err)
	}
	return v, true, nil
}
