package router

import (
	"context"
	"fmt"
	"io"
	nethttp "net/http"
	"net/http/cookiejar"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/discovery"
)

func stickyRoute(id, domain, service string) api.Route {
	r := route(id, domain, "", service)
	r.Sticky = true
	return r
}

// hit sends one request and returns the backend that answered and the
// sticky cookie the router set, if any.
func stickyHit(t *testing.T, c *nethttp.Client, url, host string, cookies ...*nethttp.Cookie) (string, *nethttp.Cookie) {
	t.Helper()
	req, _ := nethttp.NewRequest("GET", url, nil)
	req.Host = host
	for _, ck := range cookies {
		req.AddCookie(ck)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d %q", resp.StatusCode, b)
	}
	for _, ck := range resp.Cookies() {
		if strings.HasPrefix(ck.Name, stickyCookiePrefix) {
			return string(b), ck
		}
	}
	return string(b), nil
}

func TestProxySticky(t *testing.T) {
	fw := newFakeWatcher()
	for i := range 3 {
		_, inst := backend(t, fmt.Sprint("b", i), nil)
		fw.add("svc", inst)
	}
	p, s := newTestProxy(t, fw, stickyRoute("r1", "a.test", "svc"), route("r2", "plain.test", "", "svc"))

	// With a cookie jar: one backend for all.
	jar, _ := cookiejar.New(nil)
	c := &nethttp.Client{Jar: jar}
	first, ck := stickyHit(t, c, s.URL+"/", "a.test")
	if ck == nil || !ck.HttpOnly || ck.Path != "/" || ck.SameSite != nethttp.SameSiteLaxMode || ck.Secure {
		t.Fatalf("sticky cookie %+v", ck)
	}
	if !strings.HasPrefix(ck.Value, first+".") {
		t.Fatalf("cookie %q does not name backend %q", ck.Value, first)
	}
	for i := range 19 {
		got, set := stickyHit(t, c, s.URL+"/x", "a.test")
		if got != first {
			t.Fatalf("request %d went to %s, pinned to %s", i+2, got, first)
		}
		if set != nil {
			t.Fatalf("request %d with a valid cookie got a new one: %v", i+2, set)
		}
	}

	// Without: spread over the three.
	seen := map[string]bool{}
	for range 30 {
		got, set := stickyHit(t, nethttp.DefaultClient, s.URL+"/", "a.test")
		if set == nil {
			t.Fatal("no cookie for a client without one")
		}
		seen[got] = true
	}
	if len(seen) < 2 {
		t.Fatalf("30 cookie-less requests all reached %v", seen)
	}
	// A route without the option sets no cookie.
	if _, set := stickyHit(t, nethttp.DefaultClient, s.URL+"/", "plain.test"); set != nil {
		t.Fatalf("non-sticky route set %v", set)
	}

	// Tampered cookies are ignored: another instance under the first's
	// signature, a truncated signature, a cookie of another route.
	mac := ck.Value[strings.LastIndexByte(ck.Value, '.'):]
	other := "b0"
	if first == "b0" {
		other = "b1"
	}
	r1 := p.Table().Routes()[0]
	r2 := stickyRoute("r9", "a.test", "svc")
	for _, v := range []string{other + mac, ck.Value[:len(ck.Value)-2], other + ".", other, p.stickyCookie(&r2, other, false).Value} {
		forged := &nethttp.Cookie{Name: stickyCookieName(r1), Value: v}
		counts := map[string]int{}
		for range 20 {
			got, set := stickyHit(t, nethttp.DefaultClient, s.URL+"/", "a.test", forged)
			if set == nil {
				t.Fatalf("forged cookie %q accepted", v)
			}
			counts[got]++
		}
		if counts[other] == 20 {
			t.Fatalf("forged cookie %q steered every request", v)
		}
	}

	// The pinned backend leaves discovery: a new one is picked and the
	// cookie reset to it, then kept.
	fw.send(t, discovery.Event{Type: discovery.EventDown, Service: "svc", Instance: &discovery.Instance{ID: first}})
	waitFor(t, func() bool { return len(p.Backends().List(context.Background(), "svc")) == 2 })
	next, set := stickyHit(t, c, s.URL+"/", "a.test")
	if next == first || set == nil || !strings.HasPrefix(set.Value, next+".") {
		t.Fatalf("after %s left: reached %s, cookie %v", first, next, set)
	}
	for range 10 {
		if got, _ := stickyHit(t, c, s.URL+"/", "a.test"); got != next {
			t.Fatalf("re-pinned to %s, reached %s", next, got)
		}
	}
}

func TestProxyStickyRetryRepins(t *testing.T) {
	fw := newFakeWatcher()
	_, live := backend(t, "live", nil)
	fw.add("svc", discovery.Instance{ID: "dead", Addr: deadAddr(t)}, live)
	p, s := newTestProxy(t, fw, stickyRoute("r1", "a.test", "svc"))
	r := p.Table().Routes()[0]
	// Pinned to an instance that is listed but cannot be dialled: the
	// retry's backend answers and the cookie follows it.
	got, set := stickyHit(t, nethttp.DefaultClient, s.URL+"/", "a.test", p.stickyCookie(r, "dead", false))
	if got != "live" || set == nil || !strings.HasPrefix(set.Value, "live.") {
		t.Fatalf("reached %s, cookie %v", got, set)
	}
}

func TestStickyKeyShared(t *testing.T) {
	// Two routers with one key accept each other's cookies; with
	// different (random) keys they do not.
	fw := newFakeWatcher()
	key := []byte("0123456789abcdef0123456789abcdef")
	r := stickyRoute("r1", "a.test", "svc")
	a, b, c := NewProxy(fw, Config{StickyKey: key}), NewProxy(fw, Config{StickyKey: key}), NewProxy(fw, Config{})
	defer a.Close()
	defer b.Close()
	defer c.Close()
	req, _ := nethttp.NewRequest("GET", "/", nil)
	req.AddCookie(a.stickyCookie(&r, "inst1", true))
	if got := b.stickyInstance(req, &r); got != "inst1" {
		t.Errorf("same key: %q", got)
	}
	if got := c.stickyInstance(req, &r); got != "" {
		t.Errorf("other key accepted the cookie: %q", got)
	}
	// A cookie is bound to the route's service too.
	moved := r
	moved.Service = "svc2"
	if got := b.stickyInstance(req, &moved); got != "" {
		t.Errorf("cookie valid after the route changed service: %q", got)
	}
}

func TestProxyLeaderOnly(t *testing.T) {
	fw := newFakeWatcher()
	var hits [3]atomic.Int64
	var insts [3]discovery.Instance
	for i := range insts {
		_, insts[i] = backend(t, fmt.Sprint("i", i), func(w nethttp.ResponseWriter, r *nethttp.Request) {
			hits[i].Add(1)
			fmt.Fprint(w, "i", i)
		})
	}
	// Discovery lists the oldest, the leader, first.
	fw.add("db", insts[0], insts[1], insts[2])
	lr := route("r1", "db.test", "", "db")
	lr.LeaderOnly = true
	p, s := newTestProxy(t, fw, lr, route("r2", "any.test", "", "db"))
	for range 20 {
		if code, body, _ := get(t, s, "db.test", "/"); code != 200 || body != "i0" {
			t.Fatalf("leader-only: %d %q", code, body)
		}
	}
	// The plain route to the same service spreads.
	for range 30 {
		get(t, s, "any.test", "/")
	}
	if hits[1].Load()+hits[2].Load() == 0 {
		t.Fatal("the plain route reached the leader only")
	}

	// The leader goes: no backend until discovery names the next one,
	// never a follower meanwhile.
	fw.send(t, discovery.Event{Type: discovery.EventDown, Service: "db", Instance: &insts[0]})
	waitFor(t, func() bool { return len(p.Backends().List(context.Background(), "db")) == 2 })
	if code, body, _ := get(t, s, "db.test", "/"); code != 503 || !strings.Contains(body, "no leader") {
		t.Fatalf("between leaders: %d %q", code, body)
	}
	fw.send(t, discovery.Event{Type: discovery.EventLeader, Service: "db", Instance: &insts[2]})
	waitFor(t, func() bool { return p.Backends().Leader(context.Background(), "db") != nil })
	for range 10 {
		if code, body, _ := get(t, s, "db.test", "/"); code != 200 || body != "i2" {
			t.Fatalf("new leader: %d %q", code, body)
		}
	}

	// A leader that cannot be dialled is not replaced by a follower.
	dead := discovery.Instance{ID: "dead", Addr: deadAddr(t)}
	fw.send(t, discovery.Event{Type: discovery.EventUp, Service: "db", Instance: &dead})
	fw.send(t, discovery.Event{Type: discovery.EventLeader, Service: "db", Instance: &dead})
	waitFor(t, func() bool {
		l := p.Backends().Leader(context.Background(), "db")
		return l != nil && l.Instance.ID == "dead"
	})
	before := hits[1].Load() + hits[2].Load()
	for range 5 {
		if code, _, _ := get(t, s, "db.test", "/"); code != 502 {
			t.Fatalf("dead leader: %d, want 502", code)
		}
	}
	if hits[1].Load()+hits[2].Load() != before {
		t.Fatal("a leader-only request was retried on a follower")
	}
}
