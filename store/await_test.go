package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pierpaas/pier/store"
	"github.com/pierpaas/pier/store/storetest"
)

// TestAwait: a waiter sees every state a key passes through, even ones
// that last less than any poll interval, and a deletion as absence.
func TestAwait(t *testing.T) {
	cli := storetest.NewCluster(t, 1).Client()
	ctx := testCtx(t)

	t.Run("already there", func(t *testing.T) {
		if _, err := store.Put(ctx, cli, "/test/await/now", app{"a", 7}); err != nil {
			t.Fatal(err)
		}
		v, ok, err := store.Await(ctx, cli, "/test/await/now", func(v app, ok bool) bool { return ok })
		if err != nil || !ok || v.N != 7 {
			t.Fatalf("Await = %v, %v, %v", v, ok, err)
		}
	})

	t.Run("a passing state", func(t *testing.T) {
		key := "/test/await/passing"
		got := make(chan app, 1)
		started := make(chan struct{})
		go func() {
			v, _, err := store.Await(ctx, cli, key, func(v app, ok bool) bool {
				if !ok && v.N == 0 {
					select {
					case <-started:
					default:
						close(started)
					}
				}
				return ok && v.N == 2
			})
			if err != nil {
				t.Error(err)
			}
			got <- v
		}()
		<-started
		// 1, 2, 3 and a deletion in a row: state 2 lives for one revision.
		for n := 1; n <= 3; n++ {
			if _, err := store.Put(ctx, cli, key, app{"p", n}); err != nil {
				t.Fatal(err)
			}
		}
		if err := store.Delete(ctx, cli, key); err != nil {
			t.Fatal(err)
		}
		if v := <-got; v.N != 2 {
			t.Fatalf("Await returned %v, want state 2", v)
		}
	})

	t.Run("deleted", func(t *testing.T) {
		key := "/test/await/deleted"
		if _, err := store.Put(ctx, cli, key, app{"d", 1}); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			_, ok, err := store.Await(ctx, cli, key, func(_ app, ok bool) bool { return !ok })
			if err == nil && ok {
				err = errors.New("returned while the key exists")
			}
			done <- err
		}()
		if err := store.Delete(ctx, cli, key); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})

	t.Run("context ends", func(t *testing.T) {
		key := "/test/await/never"
		if _, err := store.Put(ctx, cli, key, app{"n", 1}); err != nil {
			t.Fatal(err)
		}
		short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		v, ok, err := store.Await(short, cli, key, func(v app, ok bool) bool { return v.N == 99 })
		if !errors.Is(err, context.DeadlineExceeded) || !ok || v.N != 1 {
			t.Fatalf("Await = %v, %v, %v; want the last value and the deadline", v, ok, err)
		}
	})
}
