package client

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/pierpaas/pier/api"
)

// A 503 is answered by sending an idempotent request again, body and all;
// a POST is never sent twice.
func TestRetryOn503(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if calls.Add(1) < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(`{"code":"unavailable","message":"try again"}`))
			return
		}
		w.Write(body)
	}))
	defer srv.Close()
	c := &rest{base: srv.URL, hc: srv.Client()}
	var out map[string]int
	if err := c.do(context.Background(), http.MethodPut, "/x", map[string]int{"web": 3}, &out); err != nil || out["web"] != 3 {
		t.Fatalf("PUT: %v %v", out, err)
	}
	if n := calls.Load(); n != 3 {
		t.Fatalf("%d calls, want 3", n)
	}
	calls.Store(0)
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/x", bytes.NewReader([]byte("{}")))
	if _, err := c.sendRequest(req); err == nil {
		t.Fatal("a POST answered 503 succeeded")
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("a POST was sent %d times", n)
	}
}

// A request that makes a release carries a fresh idempotency key, and is
// sent again, with the same key, after a 503.
func TestReleaseRequestsRetryWithOneKey(t *testing.T) {
	var keys []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		keys = append(keys, r.Header.Get(api.IdempotencyHeader))
		if len(keys) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(`{"code":"unavailable","message":"try again"}`))
			return
		}
		w.Write([]byte(`{"release":{"id":"app-v2","version":2}}`))
	}))
	defer srv.Close()
	c, err := NewController(srv.URL, "k", nil)
	if err != nil {
		t.Fatal(err)
	}
	v := "1"
	res, err := c.SetEnv(context.Background(), "app", map[string]*string{"A": &v})
	if err != nil || res.Release.Version != 2 {
		t.Fatalf("set env: %+v %v", res, err)
	}
	if len(keys) != 2 || len(keys[0]) != 32 || keys[0] != keys[1] {
		t.Fatalf("keys sent: %q", keys)
	}
	if _, err := c.SetEnv(context.Background(), "app", map[string]*string{"A": &v}); err != nil || keys[2] == keys[0] {
		t.Fatalf("a second change reused the key %q (%v)", keys[2], err)
	}
}

// A build stream cut before its final event says the server was lost and
// to push again.
func TestBuildStreamLost(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"output":"-----> Building\n"}` + "\n"))
		w.(http.Flusher).Flush()
		conn, _, _ := w.(http.Hijacker).Hijack()
		conn.Close() // the server dies mid-build
	}))
	defer srv.Close()
	c := &Controller{rest: rest{base: srv.URL, hc: srv.Client()}}
	var seen int
	_, err := c.Build(context.Background(), "hello", "upload", 1, bytes.NewReader([]byte("x")), func(api.BuildEvent) { seen++ })
	if !errors.Is(err, ErrBuildLost) || seen != 1 || !strings.Contains(err.Error(), "pier builds -a hello, then push again") {
		t.Fatalf("after %d events: %v", seen, err)
	}
}
