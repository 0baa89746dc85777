package controller_test

import (
	"testing"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/store"
)

// A build whose server stopped (its secret's lease expired with it)
// reads as failed, and is recorded so; one whose server keeps its secret
// is still running.
func TestOrphanedBuildFails(t *testing.T) {
	e := newEnv(t)
	c := ctx(t)
	if _, err := e.cli.CreateApp(c, api.CreateAppRequest{Name: "o"}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	for _, b := range []api.Build{
		{ID: "o-build-orphan", App: "o", State: api.BuildRunning, CreatedAt: now.Add(-time.Minute)},
		{ID: "o-build-alive", App: "o", State: api.BuildRunning, CreatedAt: now},
	} {
		if _, err := store.Put(c, e.tc.Client, store.BuildsPrefix+b.ID, b); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.tc.Client.Put(c, store.BuildSecretsPrefix+"o-build-alive", `{"token_sha256":"00"}`); err != nil {
		t.Fatal(err)
	}

	builds, err := e.cli.Builds(c, "o")
	if err != nil || len(builds) != 2 {
		t.Fatalf("builds: %+v, %v", builds, err)
	}
	if b := builds[1]; b.ID != "o-build-orphan" || b.State != api.BuildFailed || b.Error == "" || b.FinishedAt.IsZero() {
		t.Errorf("orphaned build: %+v", b)
	}
	if b := builds[0]; b.State != api.BuildRunning {
		t.Errorf("a build whose server lives: %+v", b)
	}
	saved, _, err := store.Get[api.Build](c, e.tc.Client, store.BuildsPrefix+"o-build-orphan")
	if err != nil || saved.State != api.BuildFailed {
		t.Errorf("recorded: %+v, %v", saved, err)
	}

	// The same through builds:info, for a build nobody listed.
	b := api.Build{ID: "o-build-orphan2", App: "o", State: api.BuildPending, CreatedAt: now}
	if _, err := store.Put(c, e.tc.Client, store.BuildsPrefix+b.ID, b); err != nil {
		t.Fatal(err)
	}
	if got, err := e.cli.BuildInfo(c, "o", b.ID); err != nil || got.State != api.BuildFailed {
		t.Errorf("builds:info of an orphan: %+v, %v", got, err)
	}
}
