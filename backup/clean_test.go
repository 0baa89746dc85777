package backup

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/store"
	"github.com/pierpaas/pier/store/storetest"
)

func TestMoveDomain(t *testing.T) {
	for _, c := range []struct {
		in, want string
		ok       bool
	}{
		{"old.example", "new.test", true},
		{"shop.old.example", "shop.new.test", true},
		{"*.old.example", "*.new.test", true},
		{"bold.example", "bold.example", false},
		{"shop.example.com", "shop.example.com", false},
	} {
		got, ok := moveDomain(c.in, "old.example", "new.test")
		if got != c.want || ok != c.ok {
			t.Errorf("moveDomain(%q) = %q %v, want %q %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

// TestSnapshotCleanLoad takes a real etcd snapshot of a store holding
// what a cluster holds, reads it back, cleans it for a new domain and
// server, and loads it into a second, empty store.
func TestSnapshotCleanLoad(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	src := storetest.NewCluster(t, 1).Client()
	put := func(key string, v any, opts ...store.Option) {
		t.Helper()
		if _, err := store.Put(ctx, src, key, v, opts...); err != nil {
			t.Fatal(err)
		}
	}
	const digest = "0000000000000000000000000000000000000000000000000000000000000001"
	put(store.AppsPrefix+"shop", api.App{Name: "shop", Release: "r2"})
	put(store.ReleasesPrefix+"r2", api.Release{ID: "r2", App: "shop", Version: 2, Env: map[string]string{"GREETING": "hi"},
		Artifact: &api.Artifact{Type: "slug", URI: "https://10.0.0.1:7300/v1/blobs/sha256/" + digest, SHA256: digest}})
	put(store.RoutesPrefix+"www", api.Route{ID: "www", Type: api.RouteHTTP, Domain: "www.old.example", Path: "/api", Service: "web.shop"})
	put(store.RoutesPrefix+"other", api.Route{ID: "other", Type: api.RouteHTTP, Domain: "shop.example.com", Service: "web.shop"})
	put(store.RouteIndexPrefix+"http/www.old.example/api", "www")
	put(store.RouteIndexPrefix+"http/shop.example.com/", "other")
	put(store.APIKeysPrefix+"k1", api.APIKey{ID: "k1", Hash: "h"})
	put(store.VolumesPrefix+"v1", api.Volume{ID: "v1", App: "pg", Host: "old-host"})
	put(store.ResourcesPrefix+"db", api.Resource{Name: "db", Type: "postgres", State: api.ResourceAvailable, Attachments: []api.Attachment{
		{App: "shop", State: api.AttachmentAttached, Role: "shop", Login: "shop_2", Database: "shop"},
		{App: "old", State: api.AttachmentDetaching, Role: "old", Database: "old"},
	}})
	put(store.HostsPrefix+"old-host", api.Host{ID: "old-host"})
	put(store.JobsPrefix+"old-host/j1", api.Job{ID: "j1"})
	put(store.JobStatusPrefix+"j1", api.JobStatus{})
	put("/pier/leaders/scheduler/x", "old-server")
	put(store.AppsPrefix+"gone", api.App{Name: "gone"})
	if _, err := src.Delete(ctx, store.AppsPrefix+"gone"); err != nil {
		t.Fatal(err)
	}
	lease, err := src.Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	put(store.Root+"presence/x", "here", store.WithLease(lease.ID))

	path := filepath.Join(t.TempDir(), "snap.db")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.Snapshot(ctx, src, f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	kvs, err := store.ReadSnapshot(path)
	if err != nil {
		t.Fatal(err)
	}
	clean, sum, err := Clean(kvs, Options{OldDomain: "old.example", NewDomain: "new.test", BlobURL: "https://10.9.9.9:7300"})
	if err != nil {
		t.Fatal(err)
	}
	if sum.RoutesMoved != 1 || sum.ArtifactsMoved != 1 || sum.VolumesUnbound != 1 || sum.Dropped != 5 || sum.AttachmentsRemade != 1 {
		t.Fatalf("summary %+v", sum)
	}
	dst := storetest.NewCluster(t, 1).Client()
	if err := Load(ctx, dst, clean); err != nil {
		t.Fatal(err)
	}
	resp, err := dst.Get(ctx, store.Root, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, kv := range resp.Kvs {
		keys = append(keys, string(kv.Key))
	}
	want := []string{
		store.APIKeysPrefix + "k1", store.AppsPrefix + "shop", store.ReleasesPrefix + "r2",
		store.ResourcesPrefix + "db", store.RouteIndexPrefix + "http/shop.example.com/", store.RouteIndexPrefix + "http/www.new.test/api",
		store.RoutesPrefix + "other", store.RoutesPrefix + "www", store.VolumesPrefix + "v1",
	}
	if len(keys) != len(want) {
		t.Fatalf("loaded %q\nwant %q", keys, want)
	}
	for i := range want {
		if keys[i] != want[i] {
			t.Fatalf("loaded %q\nwant %q", keys, want)
		}
	}
	rel, _, err := store.Get[api.Release](ctx, dst, store.ReleasesPrefix+"r2")
	if err != nil || rel.Artifact.URI != "https://10.9.9.9:7300/v1/blobs/sha256/"+digest || rel.Env["GREETING"] != "hi" {
		t.Fatalf("release %+v %v", rel, err)
	}
	rt, _, _ := store.Get[api.Route](ctx, dst, store.RoutesPrefix+"www")
	other, _, _ := store.Get[api.Route](ctx, dst, store.RoutesPrefix+"other")
	vol, _, _ := store.Get[api.Volume](ctx, dst, store.VolumesPrefix+"v1")
	if rt.Domain != "www.new.test" || other.Domain != "shop.example.com" || vol.Host != "" {
		t.Fatalf("route %+v, other %+v, volume %+v", rt, other, vol)
	}
	// The attached app's role and database are made again on the new
	// member, under the role itself; one being detached stays so.
	res, _, err := store.Get[api.Resource](ctx, dst, store.ResourcesPrefix+"db")
	if err != nil || res.Attachments[0].State != api.AttachmentPending || res.Attachments[0].Login != "" ||
		res.Attachments[1].State != api.AttachmentDetaching || res.State != api.ResourceAvailable {
		t.Fatalf("resource %+v %v", res, err)
	}
	// Values left alone stay byte for byte.
	b, _ := json.Marshal(api.APIKey{ID: "k1", Hash: "h"})
	if got, _ := dst.Get(ctx, store.APIKeysPrefix+"k1"); string(got.Kvs[0].Value) != string(b) {
		t.Fatalf("api key %s, want %s", got.Kvs[0].Value, b)
	}
}
