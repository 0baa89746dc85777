package controller

import (
	"slices"
	"testing"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/store"
)

func TestBuildRetention(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b := func(id, app string, age int, finished bool) store.Item[api.Build] {
		v := api.Build{ID: id, App: app, CreatedAt: t0.Add(-time.Duration(age) * time.Minute),
			SourceSHA256: "src-" + id, CacheSHA256: "cache-" + id, OutputSHA256: "out-" + id}
		if finished {
			v.FinishedAt = v.CreatedAt.Add(time.Minute)
		}
		return store.Item[api.Build]{Value: v}
	}
	items := []store.Item[api.Build]{
		b("a1", "a", 1, true), b("a2", "a", 2, true), b("a3", "a", 3, true), b("a4", "a", 4, false),
		b("z1", "z", 1, true),
	}
	old := oldBuilds(items, 2)
	slices.Sort(old)
	if !slices.Equal(old, []string{"a3"}) { // a4 still runs
		t.Fatalf("old builds %v", old)
	}
	kept := keptBuildBlobs(items, 2)
	for _, want := range []string{"cache-a1", "out-a2", "cache-z1", "src-a4"} {
		if !slices.Contains(kept, want) {
			t.Errorf("%s not kept: %v", want, kept)
		}
	}
	for _, gone := range []string{"cache-a3", "out-a3", "src-a1"} {
		if slices.Contains(kept, gone) {
			t.Errorf("%s kept: %v", gone, kept)
		}
	}
}
