package replica

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/blobstore"
	"github.com/pierpaas/pier/discovery"
	"github.com/pierpaas/pier/store/storetest"
)

// server is one server's blobstore, served as a server's API serves it,
// and listed in discovery. (httptest's TLS servers share one
// certificate, so any one's client trusts them all.)
type server struct {
	store *blobstore.Store
	r     *Replicator
	// asked counts the blob requests it answered, and localOnly those
	// that carried LocalOnlyHeader.
	asked, localOnly atomic.Int32
}

func newServers(t *testing.T, names ...string) map[string]*server {
	t.Helper()
	c := storetest.NewCluster(t, 1)
	reg := discovery.New(c.Client())
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	out := map[string]*server{}
	for _, name := range names {
		st, err := blobstore.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		s := &server{store: st}
		h := http.StripPrefix("/v1", blobstore.Handler(st, func(*http.Request) error { return nil }))
		ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.asked.Add(1)
			if r.Header.Get(LocalOnlyHeader) != "" {
				s.localOnly.Add(1)
			}
			h.ServeHTTP(w, r)
		}))
		t.Cleanup(ts.Close)
		s.r = &Replicator{Store: st, Registry: reg, Self: name, Client: ts.Client(),
			Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
		list(t, reg, name, ts.URL)
		out[name] = s
	}
	waitFor(t, "every server listed", func() bool {
		insts, _ := reg.Instances(ctx, api.ServersService)
		return len(insts) == len(names)
	})
	return out
}

// list registers a server in discovery as pier's servers do.
func list(t *testing.T, reg *discovery.Registry, name, url string) {
	t.Helper()
	g, err := reg.Register(context.Background(), api.ServersService,
		discovery.Instance{ID: name, Addr: strings.TrimPrefix(url, "https://"), Proto: "https"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
}

func put(t *testing.T, s *server, content string) string {
	t.Helper()
	b, err := s.store.Put(context.Background(), strings.NewReader(content), "")
	if err != nil {
		t.Fatal(err)
	}
	return b.SHA256
}

func has(s *server, digest string) bool {
	_, err := s.store.Stat(digest)
	return err == nil
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestFetchCopiesFromThePeerThatHasIt(t *testing.T) {
	ss := newServers(t, "s1", "s2", "s3")
	d := put(t, ss["s1"], "slug bytes")
	ctx := context.Background()
	if err := ss["s3"].r.Fetch(ctx, d); err != nil {
		t.Fatal(err)
	}
	if !has(ss["s3"], d) {
		t.Fatal("fetched, but not stored")
	}
	if ss["s1"].localOnly.Load() != 1 || ss["s3"].asked.Load() != 0 {
		t.Fatalf("s1 asked %d times as a peer, s3 asked itself %d times", ss["s1"].localOnly.Load(), ss["s3"].asked.Load())
	}
	// Already here: nobody is asked.
	before := ss["s1"].asked.Load() + ss["s2"].asked.Load()
	if err := ss["s3"].r.Fetch(ctx, d); err != nil || ss["s1"].asked.Load()+ss["s2"].asked.Load() != before {
		t.Fatalf("a second fetch asked peers (%v)", err)
	}
	// Nowhere: an error saying so.
	missing := strings.Repeat("ab", 32)
	if err := ss["s2"].r.Fetch(ctx, missing); !errors.Is(err, ErrNowhere) {
		t.Fatalf("fetch of a missing blob: %v", err)
	}
	if err := ss["s2"].r.Fetch(ctx, "../etc/passwd"); !errors.Is(err, blobstore.ErrBadDigest) {
		t.Fatalf("fetch of a bad digest: %v", err)
	}
}

func TestFetchRefusesOtherBytes(t *testing.T) {
	ss := newServers(t, "s1")
	// A "peer" that answers every blob with the same wrong bytes.
	liar := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "not the blob")
	}))
	defer liar.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	list(t, ss["s1"].r.Registry, "liar", liar.URL)
	waitFor(t, "the liar listed", func() bool {
		insts, _ := ss["s1"].r.Registry.Instances(ctx, api.ServersService)
		return len(insts) == 2
	})
	sum := sha256.Sum256([]byte("the real blob"))
	d := hex.EncodeToString(sum[:])
	err := ss["s1"].r.Fetch(ctx, d)
	if !errors.Is(err, ErrNowhere) || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("fetch from a liar: %v", err)
	}
	if has(ss["s1"], d) {
		t.Fatal("the wrong bytes were stored")
	}
}

func TestSyncCopiesWhatIsWanted(t *testing.T) {
	ss := newServers(t, "s1", "s2")
	kept := put(t, ss["s1"], "kept")
	other := put(t, ss["s1"], "not kept")
	nowhere := strings.Repeat("cd", 32)
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ss["s2"].r.Metrics = m
	n, missing, err := ss["s2"].r.Sync(context.Background(), map[string]bool{kept: true, nowhere: true, "": true})
	if err != nil || n != 1 || len(missing) != 1 || missing[0] != nowhere {
		t.Fatalf("sync copied %d, missing %v: %v", n, missing, err)
	}
	if c, f := testutil.ToFloat64(m.copied), testutil.ToFloat64(m.failed); c != 1 || f != 1 {
		t.Fatalf("metrics: %v copied, %v failed; want 1 and 1", c, f)
	}
	if !has(ss["s2"], kept) || has(ss["s2"], other) {
		t.Fatal("sync copied the wrong blobs")
	}
	// The blob no server has is what replication lags behind by, since
	// the first pass that found it lacking, not the last.
	start := time.Now()
	if n, lag := ss["s2"].r.Lag(start.Add(time.Hour)); n != 1 || lag < time.Hour-time.Minute || lag > time.Hour+time.Minute {
		t.Fatalf("lag after the first pass: %d blobs, %v", n, lag)
	}
	if _, _, err := ss["s2"].r.Sync(context.Background(), map[string]bool{kept: true, nowhere: true}); err != nil {
		t.Fatal(err)
	}
	if n, lag := ss["s2"].r.Lag(start.Add(2 * time.Hour)); n != 1 || lag < 2*time.Hour-time.Minute {
		t.Fatalf("lag after the second pass: %d blobs, %v", n, lag)
	}
	// Once it is here, whoever brought it, nothing lags.
	late := put(t, ss["s2"], "late")
	_, _, err = ss["s2"].r.Sync(context.Background(), map[string]bool{kept: true, late: true})
	if n, lag := ss["s2"].r.Lag(time.Now()); err != nil || n != 0 || lag != 0 {
		t.Fatalf("lag once caught up: %d blobs, %v, %v", n, lag, err)
	}
}

func TestRunFollowsChanges(t *testing.T) {
	ss := newServers(t, "s1", "s2")
	var want atomic.Value
	want.Store(map[string]bool{})
	changed := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		ss["s2"].r.Run(ctx, func(context.Context) (map[string]bool, error) {
			return want.Load().(map[string]bool), nil
		}, changed, time.Hour)
	}()
	d := put(t, ss["s1"], "new release")
	want.Store(map[string]bool{d: true})
	changed <- struct{}{}
	waitFor(t, "the new blob copied", func() bool { return has(ss["s2"], d) })
	cancel()
	<-done
}

// A copy goes on when the one who asked for it gives up: the next asker
// gets it without a second download.
func TestCopyOutlivesItsFirstAsker(t *testing.T) {
	reg := discovery.New(storetest.NewCluster(t, 1).Client())
	st, err := blobstore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	content := "a slow blob"
	sum := sha256.Sum256([]byte(content))
	d := hex.EncodeToString(sum[:])
	var asked atomic.Int32
	slow := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		time.Sleep(300 * time.Millisecond)
		io.WriteString(w, content)
	}))
	defer slow.Close()
	list(t, reg, "slow", slow.URL)
	r := &Replicator{Store: st, Registry: reg, Self: "s2", Client: slow.Client(), Log: slog.New(slog.NewTextHandler(io.Discard, nil))}

	impatient, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := r.Fetch(impatient, d); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("impatient fetch: %v", err)
	}
	if err := r.Fetch(context.Background(), d); err != nil {
		t.Fatalf("second fetch: %v", err)
	}
	if _, err := st.Stat(d); err != nil || asked.Load() != 1 {
		t.Fatalf("stored: %v; the peer was asked %d times, want once", err, asked.Load())
	}
}
