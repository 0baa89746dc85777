package controller_test

import (
	"errors"
	"testing"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/store"
)

func apiCode(err error) string {
	var ae *api.Error
	if errors.As(err, &ae) {
		return ae.Code
	}
	return ""
}

// Bad resource requests are refused with nothing made; a good one makes
// the record, its secret and its system app at once, and the resource
// loop releases the member with its volume and gives it a router port.
// Removal is refused while attached unless confirmed, and then takes the
// system app.
func TestResourcesAPI(t *testing.T) {
	e := newEnv(t)
	c := ctx(t)
	if _, err := e.cli.CreateApp(c, api.CreateAppRequest{Name: "web1"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		req  api.CreateResourceRequest
		code string
	}{
		{api.CreateResourceRequest{Type: "mysql", Name: "db"}, api.ErrCodeInvalid},
		{api.CreateResourceRequest{Type: "postgres", Name: "Bad_Name"}, api.ErrCodeInvalid},
		{api.CreateResourceRequest{Type: "postgres", Name: "db", App: "nope"}, api.ErrCodeNotFound},
		{api.CreateResourceRequest{Type: "postgres", Name: "db", SizeMB: -1}, api.ErrCodeInvalid},
	} {
		if _, err := e.cli.CreateResource(c, tc.req); apiCode(err) != tc.code {
			t.Errorf("%+v: %v, want %s", tc.req, err, tc.code)
		}
	}
	for _, prefix := range []string{store.ResourcesPrefix, store.ResourceSecrets, store.AppsPrefix + "pg-"} {
		if items, _, _ := store.List[any](c, e.tc.Client, prefix); len(items) > 0 {
			t.Fatalf("refused requests left %s: %v", prefix, items)
		}
	}

	res, err := e.cli.CreateResource(c, api.CreateResourceRequest{Type: "postgres", Name: "db", App: "web1", SizeMB: 64})
	if err != nil {
		t.Fatal(err)
	}
	if res.App != "pg-db" || res.State != api.ResourceProvisioning || len(res.Attachments) != 1 || res.Attachments[0].State != api.AttachmentPending {
		t.Fatalf("created %+v", res)
	}
	if _, err := e.cli.CreateResource(c, api.CreateResourceRequest{Type: "postgres", Name: "db"}); apiCode(err) != api.ErrCodeConflict {
		t.Errorf("the same name again: %v", err)
	}
	if _, err := e.cli.CreateApp(c, api.CreateAppRequest{Name: "pg-taken"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cli.CreateResource(c, api.CreateResourceRequest{Type: "postgres", Name: "taken"}); apiCode(err) != api.ErrCodeConflict {
		t.Errorf("a name whose system app exists: %v", err)
	}
	if _, err := e.cli.AttachResource(c, "db", "nope"); apiCode(err) != api.ErrCodeNotFound {
		t.Errorf("attach to a missing app: %v", err)
	}
	if _, err := e.cli.AttachResource(c, "db", "pg-taken"); err != nil {
		t.Errorf("attach to another app: %v", err)
	}
	if _, err := e.cli.DetachResource(c, "db", "nope"); apiCode(err) != api.ErrCodeNotFound {
		t.Errorf("detach an app not attached: %v", err)
	}
	// The secret is nowhere in what the API answers.
	sec, _, err := store.Get[api.ResourceSecret](c, e.tc.Client, store.ResourceSecrets+"db")
	if err != nil || sec.AdminPassword == "" {
		t.Fatalf("secret: %+v %v", sec, err)
	}

	// The loop releases the member and routes it (the fake runtime's job
	// never serves, so it stays provisioning).
	var info api.ResourceInfo
	waitFor(t, "the member's release and route", func() bool {
		info, err = e.cli.Resource(c, "db")
		return err == nil && info.Port != 0
	})
	rel, err := e.cli.Release(c, "pg-db", "v1")
	if err != nil {
		t.Fatal(err)
	}
	pt, ok := rel.Processes["postgres"]
	if !ok || len(pt.Volumes) != 1 || pt.Volumes[0].SizeMB != 64 || len(pt.Ports) != 1 {
		t.Fatalf("member release: %+v", rel.Processes)
	}
	for k, v := range pt.Env {
		if v == sec.AdminPassword {
			t.Fatalf("release env %s holds the admin password", k)
		}
	}
	list, err := e.cli.Resources(c)
	if err != nil || len(list) != 1 {
		t.Fatalf("list: %v %v", list, err)
	}

	if _, err := e.cli.RemoveResource(c, "db", ""); apiCode(err) != api.ErrCodeConflict {
		t.Fatalf("remove while attached: %v", err)
	}
	if r, err := e.cli.Resource(c, "db"); err != nil || !r.DeleteRequestedAt.IsZero() {
		t.Fatalf("a refused removal changed the resource: %+v %v", r, err)
	}
	if r, err := e.cli.RemoveResource(c, "db", "db"); err != nil || r.State != api.ResourceDeleting {
		t.Fatalf("remove with confirm: %+v %v", r, err)
	}
	if _, err := e.cli.AttachResource(c, "db", "web1"); apiCode(err) != api.ErrCodeConflict {
		t.Errorf("attach while being removed: %v", err)
	}
	waitFor(t, "the system app to go", func() bool {
		_, err := e.cli.App(c, "pg-db")
		return apiCode(err) == api.ErrCodeNotFound
	})
	// Then its volume (the host's agent removes it) and the record.
	waitFor(t, "the resource to go", func() bool {
		_, err := e.cli.Resource(c, "db")
		return apiCode(err) == api.ErrCodeNotFound
	})
	if vols, err := e.cli.Volumes(c, "pg-db"); err != nil || len(vols) != 0 {
		t.Fatalf("volumes left: %+v %v", vols, err)
	}
	if _, _, err := store.Get[api.ResourceSecret](c, e.tc.Client, store.ResourceSecrets+"db"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("secret left: %v", err)
	}
}
