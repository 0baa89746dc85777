package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pierpaas/pier/store"
	"github.com/pierpaas/pier/store/storetest"
)

type app struct {
	Name string
	N    int
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestKey(t *testing.T) {
	for _, tc := range []struct {
		prefix string
		parts  []string
		want   string
	}{
		{store.AppsPrefix, []string{"web"}, "/pier/apps/web"},
		{store.JobsPrefix, []string{"h1", "j1"}, "/pier/jobs/h1/j1"},
		{"/pier/apps", []string{"web"}, "/pier/apps/web"},
		{store.AppsPrefix, nil, ""},
		{store.AppsPrefix, []string{""}, ""},
		{store.JobsPrefix, []string{"h1", "../x"}, ""},
		{store.JobsPrefix, []string{"h1/j1"}, ""},
	} {
		got, err := store.Key(tc.prefix, tc.parts...)
		if tc.want == "" {
			if !errors.Is(err, store.ErrBadKey) {
				t.Errorf("Key(%q, %q) = %q, %v; want ErrBadKey", tc.prefix, tc.parts, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Key(%q, %q) = %q, %v; want %q", tc.prefix, tc.parts, got, err, tc.want)
		}
	}
	if p, err := store.Prefix(store.JobsPrefix, "h1"); err != nil || p != "/pier/jobs/h1/" {
		t.Errorf("Prefix = %q, %v", p, err)
	}
}

func TestTyped(t *testing.T) {
	cluster := storetest.NewCluster(t, 1)
	cli := cluster.Client()

	t.Run("CRUD", func(t *testing.T) {
		ctx := testCtx(t)
		key := "/test/crud/a"
		if _, _, err := store.Get[app](ctx, cli, key); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("get missing: %v, want ErrNotFound", err)
		}
		rev, err := store.Create(ctx, cli, key, app{"a", 1})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.Create(ctx, cli, key, app{"a", 2}); !errors.Is(err, store.ErrExists) || !errors.Is(err, store.ErrConflict) {
			t.Fatalf("create existing: %v, want ErrExists", err)
		}
		v, got, err := store.Get[app](ctx, cli, key)
		if err != nil || v != (app{"a", 1}) || got != rev {
			t.Fatalf("get = %v@%d, %v; want {a 1}@%d", v, got, err, rev)
		}
		rev2, err := store.Update(ctx, cli, key, app{"a", 2}, rev)
		if err != nil || rev2 <= rev {
			t.Fatalf("update = %d, %v", rev2, err)
		}
		_, err = store.Update(ctx, cli, key, app{"a", 3}, rev)
		var ce *store.ConflictError
		if !errors.Is(err, store.ErrConflict) || !errors.As(err, &ce) || ce.Key != key || ce.Want != rev || ce.Have != rev2 {
			t.Fatalf("stale update: %v (%+v), want conflict at %d", err, ce, rev2)
		}
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrExists) {
			t.Fatalf("stale update of a present key is %v", err)
		}
		if err := store.DeleteIf(ctx, cli, key, rev); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("stale delete: %v", err)
		}
		if err := store.DeleteIf(ctx, cli, key, rev2); err != nil {
			t.Fatal(err)
		}
		if _, err := store.Update(ctx, cli, key, app{"a", 4}, rev2); !errors.Is(err, store.ErrNotFound) || !errors.Is(err, store.ErrConflict) {
			t.Fatalf("update deleted: %v, want ErrNotFound and ErrConflict", err)
		}
		if _, err := store.Put(ctx, cli, key, app{"a", 5}); err != nil {
			t.Fatal(err)
		}
		if err := store.Delete(ctx, cli, key); err != nil {
			t.Fatal(err)
		}
		if err := store.Delete(ctx, cli, key); err != nil {
			t.Fatalf("delete missing: %v, want nil", err)
		}
	})

	t.Run("ListPaginates", func(t *testing.T) {
		ctx := testCtx(t)
		const n = 1100 // more than two pages
		for i := 0; i < n; i += store.MaxTxnOps {
			tx := store.Txn()
			for j := i; j < min(i+store.MaxTxnOps, n); j++ {
				tx.Create(fmt.Sprintf("/test/list/%04d", j), app{"x", j})
			}
			if _, err := tx.Commit(ctx, cli); err != nil {
				t.Fatal(err)
			}
		}
		// A sibling prefix must not leak in, nor a bad value crash the list.
		if _, err := store.Put(ctx, cli, "/test/listx", app{}); err != nil {
			t.Fatal(err)
		}
		if _, err := cli.Put(ctx, "/test/list/bad", "{not json"); err != nil {
			t.Fatal(err)
		}
		items, rev, err := store.List[app](ctx, cli, "/test/list/")
		if err != nil {
			t.Fatal(err)
		}
		if len(items) != n {
			t.Fatalf("listed %d items, want %d", len(items), n)
		}
		for i, it := range items {
			if it.Value.N != i || it.Key != fmt.Sprintf("/test/list/%04d", i) || it.ModRevision == 0 || it.CreateRevision == 0 || it.ModRevision > rev {
				t.Fatalf("item %d = %+v (list revision %d)", i, it, rev)
			}
		}
		if _, _, err := store.Get[app](ctx, cli, "/test/list/bad"); err == nil || errors.Is(err, store.ErrNotFound) {
			t.Fatalf("get bad JSON: %v, want a decode error", err)
		}
	})

	t.Run("Lease", func(t *testing.T) {
		ctx := testCtx(t)
		lease, err := cli.Grant(ctx, 60)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.Create(ctx, cli, "/test/lease/h1", app{"h1", 0}, store.WithLease(lease.ID)); err != nil {
			t.Fatal(err)
		}
		tx := store.Txn().Create("/test/lease/h2", app{"h2", 0}, store.WithLease(lease.ID))
		if _, err := tx.Commit(ctx, cli); err != nil {
			t.Fatal(err)
		}
		if _, err := cli.Revoke(ctx, lease.ID); err != nil {
			t.Fatal(err)
		}
		items, _, err := store.List[app](ctx, cli, "/test/lease/")
		if err != nil || len(items) != 0 {
			t.Fatalf("after revoke: %v, %v; want nothing", items, err)
		}
	})

	t.Run("TxnAllOrNothing", func(t *testing.T) {
		ctx := testCtx(t)
		ra, _ := store.Create(ctx, cli, "/test/tx/a", app{"a", 1})
		rb, _ := store.Create(ctx, cli, "/test/tx/b", app{"b", 1})
		rc, _ := store.Create(ctx, cli, "/test/tx/c", app{"c", 1})
		rb2, err := store.Put(ctx, cli, "/test/tx/b", app{"b", 2}) // b moves on
		if err != nil {
			t.Fatal(err)
		}
		_, err = store.Txn().
			Update("/test/tx/a", app{"a", 2}, ra).
			Unchanged("/test/tx/b", rb).
			Delete("/test/tx/c", rc).
			Create("/test/tx/d", app{"d", 1}).
			Commit(ctx, cli)
		var ce *store.ConflictError
		if !errors.Is(err, store.ErrConflict) || !errors.As(err, &ce) || ce.Key != "/test/tx/b" || ce.Have != rb2 {
			t.Fatalf("commit = %v (%+v), want conflict on b at %d", err, ce, rb2)
		}
		items, _, _ := store.List[app](ctx, cli, "/test/tx/")
		if len(items) != 3 || items[0].Value.N != 1 || items[0].ModRevision != ra || items[2].ModRevision != rc {
			t.Fatalf("after failed txn: %+v", items)
		}

		rev, err := store.Txn().
			Update("/test/tx/a", app{"a", 2}, ra).
			Unchanged("/test/tx/b", rb2).
			Delete("/test/tx/c", rc).
			Create("/test/tx/d", app{"d", 1}).
			Unchanged("/test/tx/e", 0). // absent, and must stay so
			Commit(ctx, cli)
		if err != nil {
			t.Fatal(err)
		}
		items, _, _ = store.List[app](ctx, cli, "/test/tx/")
		if len(items) != 3 || items[0].Value.N != 2 || items[0].ModRevision != rev || items[2].Key != "/test/tx/d" || items[2].ModRevision != rev {
			t.Fatalf("after txn at %d: %+v", rev, items)
		}
	})

	t.Run("TxnLimits", func(t *testing.T) {
		ctx := testCtx(t)
		full := store.Txn()
		for i := 0; i < store.MaxTxnOps; i++ {
			full.Create(fmt.Sprintf("/test/limit/%d", i), app{})
		}
		if full.Len() != store.MaxTxnOps {
			t.Fatalf("Len = %d", full.Len())
		}
		if _, err := full.Commit(ctx, cli); err != nil {
			t.Fatalf("txn of MaxTxnOps: %v", err)
		}
		full.Unchanged("/test/limit/0", 0)
		if _, err := full.Commit(ctx, cli); !errors.Is(err, store.ErrTxnTooLarge) {
			t.Fatalf("txn of MaxTxnOps+1: %v, want ErrTxnTooLarge", err)
		}
		if _, err := store.Txn().Put("/test/dup", 1).Put("/test/dup", 2).Commit(ctx, cli); err == nil {
			t.Fatal("txn writing a key twice committed")
		}
		if _, err := store.Txn().Put("/test/bad", func() {}).Commit(ctx, cli); err == nil {
			t.Fatal("txn of an unencodable value committed")
		}
		if rev, err := store.Txn().Commit(ctx, cli); rev != 0 || err != nil {
			t.Fatalf("empty txn = %d, %v", rev, err)
		}
	})

	// Guard against the server being configured below the constant.
	t.Run("ServerLimit", func(t *testing.T) {
		ctx := testCtx(t)
		ops := make([]clientv3.Op, store.MaxTxnOps+1)
		for i := range ops {
			ops[i] = clientv3.OpPut(fmt.Sprintf("/test/server-limit/%d", i), "1")
		}
		if _, err := cli.Txn(ctx).Then(ops...).Commit(); err == nil {
			t.Fatal("etcd accepted more than MaxTxnOps operations; raise the constant")
		}
	})
}
