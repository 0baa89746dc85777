package controller_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/blobstore"
	"github.com/pierpaas/pier/internal/tarball"
)

// deployed waits for a release's deployment to finish and returns it.
func (e *env) deployed(res api.ReleaseResult) api.Deployment {
	e.t.Helper()
	var d api.Deployment
	waitFor(e.t, "deployment of "+res.Release.ID, func() bool {
		var err error
		d, err = e.cli.Deployment(ctx(e.t), res.Release.App, res.Deployment.ID)
		return err == nil && d.State.Done()
	})
	return d
}

// slug uploads a slug holding one file with content, and returns its digest.
func (e *env) slug(content string) string {
	e.t.Helper()
	dir := e.t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "file"), []byte(content), 0o644); err != nil {
		e.t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := tarball.Pack(ctx(e.t), dir, &buf, tarball.Options{}); err != nil {
		e.t.Fatal(err)
	}
	return e.upload(buf.Bytes())
}

func (e *env) upload(body []byte) string {
	e.t.Helper()
	sum := sha256.Sum256(body)
	digest := hex.EncodeToString(sum[:])
	if err := e.cli.PutBlob(ctx(e.t), digest, int64(len(body)), bytes.NewReader(body)); err != nil {
		e.t.Fatal(err)
	}
	return digest
}

func worker() map[string]api.ProcessType {
	return map[string]api.ProcessType{"worker": {Args: []string{"run"}}}
}

func TestReleasesEnvRollback(t *testing.T) {
	e := newEnv(t)
	c := ctx(t)
	if _, err := e.cli.CreateApp(c, api.CreateAppRequest{Name: "app"}); err != nil {
		t.Fatal(err)
	}
	_, err := e.cli.CreateRelease(c, "app", api.CreateReleaseRequest{Artifact: &api.Artifact{SHA256: strings.Repeat("0", 64)}, Processes: worker()})
	wantCode(t, err, api.ErrCodeInvalid, 422) // not uploaded
	_, err = e.cli.CreateRelease(c, "app", api.CreateReleaseRequest{Processes: map[string]api.ProcessType{"Bad Name": {Args: []string{"x"}}}})
	wantCode(t, err, api.ErrCodeInvalid, 422)
	_, err = e.cli.Scale(c, "app", map[string]int{"worker": 1})
	wantCode(t, err, api.ErrCodeInvalid, 422) // no release yet

	digest := e.slug("slug one")
	res, err := e.cli.CreateRelease(c, "app", api.CreateReleaseRequest{
		Artifact: &api.Artifact{SHA256: digest}, Processes: worker(), Env: map[string]string{"A": "1"}})
	if err != nil || res.Release.Version != 1 || res.Release.ID != "app-v1" || !strings.HasSuffix(res.Release.Artifact.URI, digest) {
		t.Fatalf("v1: %+v, %v", res, err)
	}
	if d := e.deployed(res); d.State != api.DeployComplete {
		t.Fatalf("v1 deployment: %+v", d)
	}
	if _, err := e.cli.Scale(c, "app", map[string]int{"worker": 2}); err != nil {
		t.Fatal(err)
	}
	_, err = e.cli.Scale(c, "app", map[string]int{"web": 1})
	wantCode(t, err, api.ErrCodeInvalid, 422)
	_, err = e.cli.Scale(c, "app", map[string]int{"worker": -1})
	wantCode(t, err, api.ErrCodeInvalid, 422)

	one := "2"
	res, err = e.cli.SetEnv(c, "app", map[string]*string{"B": &one, "A": nil})
	if err != nil || res.Release.Version != 2 || res.Release.Env["B"] != "2" || res.Release.Env["A"] != "" || res.Release.Artifact.SHA256 != digest {
		t.Fatalf("v2: %+v, %v", res, err)
	}
	if res.Deployment.Processes["worker"] != 2 {
		t.Fatalf("v2 carries the counts over: %+v", res.Deployment)
	}
	if d := e.deployed(res); d.State != api.DeployComplete {
		t.Fatalf("v2 deployment: %+v", d)
	}
	res, err = e.cli.Rollback(c, "app", 1)
	if err != nil || res.Release.Version != 3 || res.Release.Env["A"] != "1" || res.Release.Env["B"] != "" {
		t.Fatalf("rollback: %+v, %v", res, err)
	}
	e.deployed(res)
	_, err = e.cli.Rollback(c, "app", 9)
	wantCode(t, err, api.ErrCodeNotFound, 404)
	_, err = e.cli.Rollback(c, "app", 3)
	wantCode(t, err, api.ErrCodeInvalid, 422)

	app, _ := e.cli.App(c, "app")
	f, _ := e.cli.Formation(c, "app")
	if app.Release != "app-v3" || f.Version != 3 || f.Processes["worker"] != 2 {
		t.Fatalf("app %+v formation %+v", app, f)
	}
	rels, _ := e.cli.Releases(c, "app")
	if len(rels) != 3 || rels[0].Version != 3 || rels[2].Version != 1 {
		t.Fatalf("releases: %+v", rels)
	}
	waitFor(t, "two workers of v3", func() bool {
		jl, err := e.cli.Jobs(c, "app")
		n := 0
		for _, j := range jl.Jobs {
			if j.Version == 3 && j.State == api.JobRunning && j.Desired == api.DesiredRunning {
				n++
			}
		}
		return err == nil && n == 2
	})
}

// TestConcurrentEnvChanges: config changes made at the same moment, and
// during a deployment, all land, one release each, numbered once: each
// waits its turn behind the deployment before it, and is made from the
// newest release queued, so the last release holds every change.
func TestConcurrentEnvChanges(t *testing.T) {
	e := newEnv(t)
	c := ctx(t)
	e.cli.CreateApp(c, api.CreateAppRequest{Name: "app"})
	res, err := e.cli.CreateRelease(c, "app", api.CreateReleaseRequest{Processes: worker()})
	if err != nil {
		t.Fatal(err)
	}
	e.deployed(res)
	if _, err := e.cli.Scale(c, "app", map[string]int{"worker": 2}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	results := map[int]api.ReleaseResult{}
	for i := range 8 {
		wg.Go(func() {
			v := strconv.Itoa(i)
			res, err := e.cli.SetEnv(c, "app", map[string]*string{"K" + v: &v})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Errorf("change %d: %v", i, err)
				return
			}
			if _, dup := results[res.Release.Version]; dup {
				t.Errorf("version %d handed out twice", res.Release.Version)
			}
			results[res.Release.Version] = res
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	var prev api.Deployment
	waited := 0
	for v := 2; v <= 9; v++ {
		res, ok := results[v]
		if !ok {
			t.Fatalf("no change made v%d: %v", v, slices.Sorted(maps.Keys(results)))
		}
		d := e.deployed(res)
		if d.State != api.DeployComplete || d.OldRelease != api.ReleaseID("app", v-1) || d.StartedAt.Before(prev.FinishedAt) {
			t.Fatalf("v%d's deployment: %+v after %+v", v, d, prev)
		}
		if d.CreatedAt.Before(prev.FinishedAt) {
			waited++
		}
		prev = d
		if len(res.Release.Env) != v-1 {
			t.Fatalf("v%d is made from v%d: %v", v, v-1, res.Release.Env)
		}
	}
	if waited == 0 {
		t.Fatal("no change was made during another's deployment")
	}
	app, _ := e.cli.App(c, "app")
	env, _ := e.cli.Env(c, "app")
	if app.Release != "app-v9" || len(env) != 8 {
		t.Fatalf("app %+v, env %v", app, env)
	}
	waitFor(t, "two workers of v9 and nothing else", func() bool {
		jl, err := e.cli.Jobs(c, "app")
		n := 0
		for _, j := range jl.Jobs {
			if j.Desired != api.DesiredRunning {
				continue
			}
			if j.Version != 9 {
				return false
			}
			if j.State == api.JobRunning {
				n++
			}
		}
		return err == nil && n == 2
	})
}

// TestConfigTooLarge: config the store cannot hold is refused naming the
// limit, and nothing is made: a request larger than the API takes (413),
// and config vars that together are more than one store write takes
// (422), whether etcd refuses the write or its client does.
func TestConfigTooLarge(t *testing.T) {
	e := newEnv(t)
	c := ctx(t)
	e.cli.CreateApp(c, api.CreateAppRequest{Name: "app"})
	big := strings.Repeat("x", 2<<20)
	_, err := e.cli.SetEnv(c, "app", map[string]*string{"BIG": &big})
	wantCode(t, err, api.ErrCodeTooLarge, 413)
	if !strings.Contains(err.Error(), "larger than 1048576 bytes") {
		t.Fatalf("one 2 MiB var: %v", err)
	}
	chunk := strings.Repeat("y", 31<<10)
	vars := func(from, to int) map[string]*string {
		m := map[string]*string{}
		for i := from; i < to; i++ {
			m[fmt.Sprintf("V%d", i)] = &chunk
		}
		return m
	}
	for i, to := range []int{30, 45} { // 930 KiB, then 1395 KiB
		if _, err := e.cli.SetEnv(c, "app", vars(i*30, to)); err != nil {
			t.Fatalf("%d KiB of config: %v", to*31, err)
		}
	}
	for _, n := range []int{8, 30} { // 1643 KiB: etcd refuses it; 2325 KiB: its client does
		_, err = e.cli.SetEnv(c, "app", vars(45, 45+n))
		wantCode(t, err, api.ErrCodeInvalid, 422)
		if !strings.Contains(err.Error(), "too large for the cluster's store (at most 1536 KiB") {
			t.Fatalf("%d KiB of config: %v", (45+n)*31, err)
		}
	}
	if rels, _ := e.cli.Releases(c, "app"); len(rels) != 2 {
		t.Fatalf("releases made: %d", len(rels))
	}
}

func TestEventsResume(t *testing.T) {
	e := newEnv(t)
	c := ctx(t)
	events := make(chan api.Event, 100)
	sctx, stop := context.WithCancel(c)
	done := make(chan string)
	go func() {
		last, _ := e.cli.Events(sctx, "app", "", func(ev api.Event) error {
			events <- ev
			return nil
		})
		done <- last
	}()
	time.Sleep(300 * time.Millisecond) // the stream is up
	e.cli.CreateApp(c, api.CreateAppRequest{Name: "other"})
	e.cli.CreateApp(c, api.CreateAppRequest{Name: "app"})
	var first api.Event
	select {
	case first = <-events:
	case <-time.After(10 * time.Second):
		t.Fatal("no event")
	}
	if first.Type != "app" || first.Op != "create" || first.App != "app" {
		t.Fatalf("first event: %+v", first)
	}
	stop()
	last := <-done
	if last != first.ID {
		t.Fatalf("last id %q, first %q", last, first.ID)
	}
	// While nobody listens: a release, its deployment and its formation.
	res, err := e.cli.CreateRelease(c, "app", api.CreateReleaseRequest{Processes: worker()})
	if err != nil {
		t.Fatal(err)
	}
	e.deployed(res)
	var got []api.Event
	rctx, cancel := context.WithTimeout(c, 3*time.Second)
	defer cancel()
	e.cli.Events(rctx, "app", last, func(ev api.Event) error {
		got = append(got, ev)
		if ev.Type == "deployment" && ev.Object.(map[string]any)["state"] == "complete" {
			cancel()
		}
		return nil
	})
	types := map[string]bool{}
	for _, ev := range got {
		if ev.ID == first.ID || ev.App != "app" {
			t.Fatalf("resumed stream repeats or leaks: %+v", ev)
		}
		types[ev.Type] = true
	}
	for _, want := range []string{"app", "release", "deployment", "scale"} {
		if !types[want] {
			t.Errorf("no %s event after resuming: %+v", want, got)
		}
	}
}

func TestBlobGarbageCollection(t *testing.T) {
	e := newEnv(t, blobstore.WithGCGrace(0))
	c := ctx(t)
	e.cli.CreateApp(c, api.CreateAppRequest{Name: "app"})
	var digests []string
	for i := range 4 {
		d := e.slug(string(rune('a' + i)))
		digests = append(digests, d)
		res, err := e.cli.CreateRelease(c, "app", api.CreateReleaseRequest{Artifact: &api.Artifact{SHA256: d}, Processes: worker()})
		if err != nil {
			t.Fatal(err)
		}
		e.deployed(res)
	}
	stray := e.upload([]byte("never released"))
	removed, err := e.ctl.CollectBlobs(c, 2)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{digests[0]: true, digests[1]: true, stray: true}
	for _, r := range removed {
		if !want[r] {
			t.Errorf("collected %s, which a kept release needs", r)
		}
		delete(want, r)
	}
	if len(want) != 0 {
		t.Fatalf("not collected: %v (removed %v)", want, removed)
	}
	for _, d := range digests[2:] {
		if _, err := e.blobs.Stat(d); err != nil {
			t.Fatalf("kept release's blob gone: %v", err)
		}
	}
	_, err = e.cli.Rollback(c, "app", 1)
	wantCode(t, err, api.ErrCodeInvalid, 422)
	var ae *api.Error
	if errors.As(err, &ae) && !strings.Contains(ae.Message, "no longer stored") {
		t.Fatalf("rollback to a collected release: %v", err)
	}
}
