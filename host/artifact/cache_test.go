package artifact

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// blobServer serves one archive and counts requests; gate, if set, holds
// every request until it is closed.
type blobServer struct {
	*httptest.Server
	data     []byte
	requests atomic.Int32
	gate     chan struct{}
	auth     string // required Authorization header, if set
}

func newBlobServer(t *testing.T, data []byte) *blobServer {
	b := &blobServer{data: data}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.requests.Add(1)
		if b.auth != "" && r.Header.Get("Authorization") != b.auth {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		if r.URL.Path != "/slug.tgz" {
			http.NotFound(w, r)
			return
		}
		if b.gate != nil {
			// Send the headers first, so the client is inside the body
			// (and its temp file exists) while the gate holds.
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			select {
			case <-b.gate:
			case <-r.Context().Done():
				return
			}
		}
		w.Write(b.data)
	}))
	t.Cleanup(b.Close)
	return b
}

func (b *blobServer) uri() string { return b.URL + "/slug.tgz" }

func goodSlugData(t *testing.T) ([]byte, string) {
	data := buildArchive(t, true, goodSlug()...)
	return data, sha(data)
}

// cacheNames lists Dir, so tests can assert nothing was left behind.
func cacheNames(t *testing.T, c *Cache) []string {
	es, err := os.ReadDir(c.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	must(t, err)
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestFetchHTTPThenHit(t *testing.T) {
	data, digest := goodSlugData(t)
	srv := newBlobServer(t, data)
	srv.auth = "Bearer s3cret"
	c := &Cache{Dir: filepath.Join(t.TempDir(), "cache"), Authorize: func(r *http.Request) error {
		r.Header.Set("Authorization", "Bearer s3cret")
		return nil
	}}
	dir, err := c.Fetch(context.Background(), srv.uri(), digest)
	must(t, err)
	if dir != filepath.Join(c.Dir, digest) {
		t.Errorf("dir = %s", dir)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "bin", "web")); err != nil || !strings.Contains(string(b), "echo hi") {
		t.Fatalf("bin/web: %q, %v", b, err)
	}
	again, err := c.Fetch(context.Background(), srv.uri(), digest)
	must(t, err)
	if again != dir {
		t.Errorf("second Fetch = %s, want %s", again, dir)
	}
	if n := srv.requests.Load(); n != 1 {
		t.Errorf("%d HTTP requests, want 1", n)
	}
	if names := cacheNames(t, c); len(names) != 1 || names[0] != digest {
		t.Errorf("cache holds %v, want only the digest", names)
	}
	// A new Cache on the same directory (an agent restart) hits too.
	c2 := &Cache{Dir: c.Dir}
	if _, err := c2.Fetch(context.Background(), "http://127.0.0.1:1/gone", digest); err != nil {
		t.Errorf("restart: %v", err)
	}
}

func TestFetchFile(t *testing.T) {
	data, digest := goodSlugData(t)
	p := filepath.Join(t.TempDir(), "slug.tgz")
	must(t, os.WriteFile(p, data, 0o644))
	for _, uri := range []string{"file://" + p, "file://localhost" + p} {
		c := &Cache{Dir: t.TempDir()}
		dir, err := c.Fetch(context.Background(), uri, digest)
		must(t, err)
		if _, err := os.Stat(filepath.Join(dir, "Procfile")); err != nil {
			t.Errorf("%s: %v", uri, err)
		}
	}
}

func TestFetchDigestMismatch(t *testing.T) {
	data, _ := goodSlugData(t)
	srv := newBlobServer(t, data)
	c := &Cache{Dir: t.TempDir()}
	wrong := sha([]byte("something else"))
	if _, err := c.Fetch(context.Background(), srv.uri(), wrong); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("err = %v, want ErrDigestMismatch", err)
	}
	if names := cacheNames(t, c); len(names) != 0 {
		t.Errorf("cache holds %v after a mismatch", names)
	}
}

func TestFetchUnsafeArchiveCachesNothing(t *testing.T) {
	data := buildArchive(t, true, reg("ok", "x", 0o644), sym("a", "/etc"))
	srv := newBlobServer(t, data)
	c := &Cache{Dir: t.TempDir()}
	if _, err := c.Fetch(context.Background(), srv.uri(), sha(data)); !errors.Is(err, ErrUnsafe) {
		t.Fatalf("err = %v, want ErrUnsafe", err)
	}
	if names := cacheNames(t, c); len(names) != 0 {
		t.Errorf("cache holds %v after a rejection", names)
	}
}

func TestFetchDownloadLimit(t *testing.T) {
	data, digest := goodSlugData(t)
	srv := newBlobServer(t, data)
	c := &Cache{Dir: t.TempDir(), MaxDownloadSize: int64(len(data) - 1)}
	if _, err := c.Fetch(context.Background(), srv.uri(), digest); !errors.Is(err, ErrLimit) {
		t.Fatalf("err = %v, want ErrLimit", err)
	}
	// Without a Content-Length the cap is enforced while streaming.
	chunked := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(data[:10])
		w.(http.Flusher).Flush()
		w.Write(data[10:])
	}))
	defer chunked.Close()
	if _, err := c.Fetch(context.Background(), chunked.URL, digest); !errors.Is(err, ErrLimit) {
		t.Fatalf("chunked: err = %v, want ErrLimit", err)
	}
	if names := cacheNames(t, c); len(names) != 0 {
		t.Errorf("cache holds %v", names)
	}
}

func TestFetchConcurrentDownloadsOnce(t *testing.T) {
	data, digest := goodSlugData(t)
	srv := newBlobServer(t, data)
	srv.gate = make(chan struct{})
	c := &Cache{Dir: t.TempDir()}
	const n = 16
	var wg sync.WaitGroup
	dirs := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dirs[i], errs[i] = c.Fetch(context.Background(), srv.uri(), digest)
		}()
	}
	// Hold the one download open while the others pile up behind it.
	for srv.requests.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	close(srv.gate)
	wg.Wait()
	for i := range n {
		if errs[i] != nil || dirs[i] != filepath.Join(c.Dir, digest) {
			t.Errorf("Fetch %d: %q, %v", i, dirs[i], errs[i])
		}
	}
	if got := srv.requests.Load(); got != 1 {
		t.Errorf("%d HTTP requests, want 1", got)
	}
}

// A waiting Fetch must not inherit the cancellation of the Fetch that was
// downloading for it.
func TestFetchLeaderCancelled(t *testing.T) {
	data, digest := goodSlugData(t)
	srv := newBlobServer(t, data)
	srv.gate = make(chan struct{})
	c := &Cache{Dir: t.TempDir()}
	ctx, cancel := context.WithCancel(context.Background())
	leaderErr := make(chan error, 1)
	go func() {
		_, err := c.Fetch(ctx, srv.uri(), digest)
		leaderErr <- err
	}()
	for srv.requests.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	followerErr := make(chan error, 1)
	go func() {
		_, err := c.Fetch(context.Background(), srv.uri(), digest)
		followerErr <- err
	}()
	time.Sleep(20 * time.Millisecond)
	cancel()
	if err := <-leaderErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("leader: %v, want context.Canceled", err)
	}
	close(srv.gate) // let the follower's own request through
	if err := <-followerErr; err != nil {
		t.Fatalf("follower: %v", err)
	}
	if names := cacheNames(t, c); len(names) != 1 || names[0] != digest {
		t.Errorf("cache holds %v", names)
	}
}

func TestFetchRejectsBadDigest(t *testing.T) {
	srv := newBlobServer(t, nil)
	c := &Cache{Dir: t.TempDir()}
	for _, d := range badDigests() {
		if _, err := c.Fetch(context.Background(), srv.uri(), d); !errors.Is(err, ErrBadDigest) {
			t.Errorf("Fetch(%q): err = %v, want ErrBadDigest", d, err)
		}
		if err := c.Remove(d); !errors.Is(err, ErrBadDigest) {
			t.Errorf("Remove(%q): err = %v, want ErrBadDigest", d, err)
		}
	}
	if n := srv.requests.Load(); n != 0 {
		t.Errorf("%d requests for bad digests", n)
	}
}

func TestFetchRejectsUnsupportedURI(t *testing.T) {
	c := &Cache{Dir: t.TempDir()}
	digest := sha([]byte("x"))
	for _, uri := range []string{
		"", "slug.tgz", "/abs/slug.tgz", "ftp://example.com/slug.tgz", "s3://bucket/slug.tgz",
		"gopher://example.com/", "file://otherhost/slug.tgz", "file:relative.tgz",
		"http:///no-host", "javascript:alert(1)", "data:,hello",
	} {
		if _, err := c.Fetch(context.Background(), uri, digest); !errors.Is(err, ErrUnsupportedURI) {
			t.Errorf("Fetch(%q): err = %v, want ErrUnsupportedURI", uri, err)
		}
	}
}

func TestFetchHTTPStatus(t *testing.T) {
	srv := newBlobServer(t, nil)
	c := &Cache{Dir: t.TempDir()}
	_, err := c.Fetch(context.Background(), srv.URL+"/missing?X-Amz-Signature=secret", sha([]byte("x")))
	var se *StatusError
	if !errors.As(err, &se) || se.Code != http.StatusNotFound {
		t.Fatalf("err = %v, want a 404 StatusError", err)
	}
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("error leaks the query: %v", err)
	}
}

func TestRemoveGCUsage(t *testing.T) {
	c := &Cache{Dir: t.TempDir()}
	var digests []string
	for i := range 3 {
		data := buildArchive(t, true, reg("f", strings.Repeat("x", 10000*(i+1)), 0o644), hard("g", "f"))
		p := filepath.Join(t.TempDir(), "a.tgz")
		must(t, os.WriteFile(p, data, 0o644))
		d := sha(data)
		_, err := c.Fetch(context.Background(), "file://"+p, d)
		must(t, err)
		digests = append(digests, d)
	}
	used, err := c.Usage()
	must(t, err)
	if used < 60000 || used > 60000+3*5*4096+4096*4 {
		t.Errorf("Usage = %d, want about 60000 (hard links counted once)", used)
	}

	must(t, c.Remove(digests[0]))
	must(t, c.Remove(digests[0])) // idempotent
	if _, err := os.Stat(filepath.Join(c.Dir, digests[0])); !os.IsNotExist(err) {
		t.Errorf("removed artifact still there: %v", err)
	}

	// Leftovers of a crash: a partial download and extraction.
	must(t, os.WriteFile(filepath.Join(c.Dir, ".download-abc-1"), []byte("partial"), 0o644))
	must(t, os.MkdirAll(filepath.Join(c.Dir, ".x.extract-1", "a"), 0o755))
	must(t, os.WriteFile(filepath.Join(c.Dir, "not-a-digest"), nil, 0o644))

	removed, err := c.GC(func(d string) bool { return d == digests[2] })
	must(t, err)
	if len(removed) != 1 || removed[0] != digests[1] {
		t.Errorf("GC removed %v, want [%s]", removed, digests[1])
	}
	names := cacheNames(t, c)
	if strings.Join(names, ",") != digests[2]+",not-a-digest" {
		t.Errorf("after GC the cache holds %v", names)
	}
	after, err := c.Usage()
	must(t, err)
	if after >= used {
		t.Errorf("Usage %d after GC, was %d", after, used)
	}
	empty := &Cache{Dir: filepath.Join(t.TempDir(), "never-created")}
	if n, err := empty.Usage(); n != 0 || err != nil {
		t.Errorf("Usage of a missing cache = %d, %v", n, err)
	}
	if r, err := empty.GC(func(string) bool { return false }); r != nil || err != nil {
		t.Errorf("GC of a missing cache = %v, %v", r, err)
	}
}

// GC must not delete the temp files of a Fetch in flight.
func TestGCSparesInflight(t *testing.T) {
	data, digest := goodSlugData(t)
	srv := newBlobServer(t, data)
	srv.gate = make(chan struct{})
	c := &Cache{Dir: t.TempDir()}
	done := make(chan error, 1)
	go func() {
		_, err := c.Fetch(context.Background(), srv.uri(), digest)
		done <- err
	}()
	for srv.requests.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	hasTemp := func() bool {
		for _, n := range cacheNames(t, c) {
			if strings.HasPrefix(n, ".download-") {
				return true
			}
		}
		return false
	}
	for !hasTemp() {
		time.Sleep(time.Millisecond)
	}
	if _, err := c.GC(func(string) bool { return false }); err != nil {
		t.Fatal(err)
	}
	if !hasTemp() {
		t.Fatal("GC removed the download in flight")
	}
	close(srv.gate)
	if err := <-done; err != nil {
		t.Fatalf("Fetch after GC: %v", err)
	}
}
