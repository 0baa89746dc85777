package blobstore

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"syscall"
	"testing"
)

const testToken = "Bearer s3cret"

func testAuth(r *http.Request) error {
	if r.Header.Get("Authorization") != testToken {
		return errors.New("missing or wrong API key")
	}
	return nil
}

type testServer struct {
	*httptest.Server
	store *Store
}

func newTestServer(t *testing.T, opts ...Option) *testServer {
	t.Helper()
	s := newStore(t, opts...)
	srv := httptest.NewServer(Handler(s, testAuth))
	t.Cleanup(srv.Close)
	return &testServer{Server: srv, store: s}
}

func (ts *testServer) do(t *testing.T, method, path string, body []byte, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, ts.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", testToken)
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, out
}

func wantError(t *testing.T, resp *http.Response, body []byte, status int, code string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d; body %s", resp.StatusCode, status, body)
	}
	if resp.Request.Method == http.MethodHead {
		return
	}
	var e errorBody
	if err := json.Unmarshal(body, &e); err != nil || e.Code != code || e.Message == "" {
		t.Fatalf("error body %s (%v), want code %q", body, err, code)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("error Content-Type %q", ct)
	}
}

func TestHTTPRoundTrip(t *testing.T) {
	ts := newTestServer(t)
	data := []byte("0123456789abcdefghijklmnopqrstuvwxyz")
	d := digestOf(data)
	path := PathPrefix + d

	resp, body := ts.do(t, http.MethodPut, path, data, nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: %d %s", resp.StatusCode, body)
	}
	var b Blob
	if err := json.Unmarshal(body, &b); err != nil || b.SHA256 != d || b.Size != int64(len(data)) {
		t.Fatalf("PUT body %s (%v)", body, err)
	}
	if loc := resp.Header.Get("Location"); loc != path {
		t.Errorf("Location %q", loc)
	}

	resp, body = ts.do(t, http.MethodPut, path, data, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("second PUT: %d %s", resp.StatusCode, body)
	}

	resp, body = ts.do(t, http.MethodGet, path, nil, nil)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, data) {
		t.Fatalf("GET: %d %q", resp.StatusCode, body)
	}
	etag := resp.Header.Get("ETag")
	if etag != `"`+d+`"` {
		t.Errorf("ETag %q", etag)
	}
	if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "immutable") {
		t.Errorf("Cache-Control %q", cc)
	}

	resp, body = ts.do(t, http.MethodHead, path, nil, nil)
	if resp.StatusCode != http.StatusOK || len(body) != 0 || resp.ContentLength != int64(len(data)) {
		t.Fatalf("HEAD: %d len %d body %q", resp.StatusCode, resp.ContentLength, body)
	}

	resp, _ = ts.do(t, http.MethodGet, path, nil, map[string]string{"If-None-Match": etag})
	if resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match: %d", resp.StatusCode)
	}

	resp, body = ts.do(t, http.MethodDelete, path, nil, nil)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", resp.StatusCode, body)
	}
	resp, body = ts.do(t, http.MethodGet, path, nil, nil)
	wantError(t, resp, body, http.StatusNotFound, CodeNotFound)
	resp, body = ts.do(t, http.MethodDelete, path, nil, nil)
	wantError(t, resp, body, http.StatusNotFound, CodeNotFound)
}

func TestHTTPRange(t *testing.T) {
	ts := newTestServer(t)
	data := []byte("0123456789abcdefghijklmnopqrstuvwxyz")
	path := PathPrefix + digestOf(data)
	if resp, body := ts.do(t, http.MethodPut, path, data, nil); resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: %d %s", resp.StatusCode, body)
	}

	for _, tc := range []struct {
		rng  string
		want string
	}{
		{"bytes=10-15", "abcdef"},
		{"bytes=30-", "uvwxyz"},
		{"bytes=-3", "xyz"},
	} {
		resp, body := ts.do(t, http.MethodGet, path, nil, map[string]string{"Range": tc.rng})
		if resp.StatusCode != http.StatusPartialContent || string(body) != tc.want {
			t.Errorf("Range %s: %d %q, want 206 %q", tc.rng, resp.StatusCode, body, tc.want)
		}
	}
	resp, _ := ts.do(t, http.MethodGet, path, nil, map[string]string{"Range": "bytes=100-200"})
	if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		t.Errorf("unsatisfiable range: %d", resp.StatusCode)
	}
}

func TestHTTPPutRejects(t *testing.T) {
	ts := newTestServer(t, WithMaxSize(16))

	data := []byte("some bytes")
	resp, body := ts.do(t, http.MethodPut, PathPrefix+digestOf([]byte("other bytes")), data, nil)
	wantError(t, resp, body, http.StatusUnprocessableEntity, CodeDigestMismatch)
	assertNothingStored(t, ts.store)

	big := bytes.Repeat([]byte("x"), 17)
	resp, body = ts.do(t, http.MethodPut, PathPrefix+digestOf(big), big, nil)
	wantError(t, resp, body, http.StatusRequestEntityTooLarge, CodeTooLarge)
	assertNothingStored(t, ts.store)

	// Without a Content-Length the cap is found while streaming.
	req, _ := http.NewRequest(http.MethodPut, ts.URL+PathPrefix+digestOf(big), io.MultiReader(bytes.NewReader(big)))
	req.Header.Set("Authorization", testToken)
	req.ContentLength = -1
	r, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(r.Body)
	r.Body.Close()
	wantError(t, r, body, http.StatusRequestEntityTooLarge, CodeTooLarge)
	assertNothingStored(t, ts.store)
}

func TestHTTPBadDigest(t *testing.T) {
	ts := newTestServer(t)
	good := digestOf([]byte("x"))
	for _, d := range []string{"../x", "..%2Fx", "..%2F..%2Fetc%2Fpasswd", strings.ToUpper(good), good[:10], good + "00"} {
		for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete} {
			resp, body := ts.do(t, m, PathPrefix+d, []byte("x"), nil)
			wantError(t, resp, body, http.StatusBadRequest, CodeBadDigest)
		}
	}
	assertNothingStored(t, ts.store)
}

func TestHTTPRouting(t *testing.T) {
	ts := newTestServer(t)
	d := digestOf([]byte("x"))
	for _, p := range []string{"/", "/blobs", "/blobs/sha256/", "/blobs/md5/" + d, "/other/sha256/" + d} {
		resp, body := ts.do(t, http.MethodGet, p, nil, nil)
		wantError(t, resp, body, http.StatusNotFound, CodeNotFound)
	}
	for _, m := range []string{http.MethodPost, http.MethodPatch, "OPTIONS"} {
		resp, body := ts.do(t, m, PathPrefix+d, nil, nil)
		wantError(t, resp, body, http.StatusMethodNotAllowed, CodeMethodNotAllowed)
		if resp.Header.Get("Allow") == "" {
			t.Errorf("%s: no Allow header", m)
		}
	}
}

func TestHTTPAuth(t *testing.T) {
	ts := newTestServer(t)
	data := []byte("secret artifact")
	d := digestOf(data)
	if _, err := ts.store.Put(t.Context(), bytes.NewReader(data), d); err != nil {
		t.Fatal(err)
	}
	paths := []string{PathPrefix + d, PathPrefix + "../x", "/nowhere"}
	methods := []string{http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete, http.MethodPost}
	for _, auth := range []string{"", "Bearer wrong"} {
		for _, p := range paths {
			for _, m := range methods {
				resp, body := ts.do(t, m, p, data, map[string]string{"Authorization": auth})
				wantError(t, resp, body, http.StatusUnauthorized, CodeUnauthorized)
			}
		}
	}
	// Still there: the unauthenticated DELETEs did nothing.
	if _, err := ts.store.Stat(d); err != nil {
		t.Fatal(err)
	}
}

func TestHandlerNeedsAuth(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("Handler with nil auth did not panic")
		}
	}()
	Handler(newStore(t), nil)
}

// A full disk is a 507 naming the file it could not write, with the
// request's id when the controller gave it one.
func TestFullDiskError(t *testing.T) {
	rec := httptest.NewRecorder()
	rec.Header().Set("X-Request-Id", "req123")
	writeStoreError(rec, &os.PathError{Op: "write", Path: "/var/lib/pier/blobs/tmp/up-1", Err: syscall.ENOSPC})
	var body errorBody
	json.Unmarshal(rec.Body.Bytes(), &body)
	if rec.Code != http.StatusInsufficientStorage || body.Code != CodeInsufficientStorage ||
		!strings.Contains(body.Message, "/var/lib/pier/blobs/tmp/up-1: no space left on device") || !strings.Contains(body.Message, "(request req123)") {
		t.Fatalf("%d %+v", rec.Code, body)
	}
}
