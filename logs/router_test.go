package logs

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/store"
	"github.com/pierpaas/pier/store/storetest"
)

func TestRouterLines(t *testing.T) {
	c := storetest.NewCluster(t, 1)
	if _, err := store.Put(context.Background(), c.Client(), store.RoutesPrefix+"r1",
		api.Route{ID: "r1", Type: api.RouteHTTP, Domain: "shop.example.com", Service: "web.shop"}); err != nil {
		t.Fatal(err)
	}
	p := newTestPKI(t)
	a := NewAggregator(Config{})
	a.Activate()
	srv := serve(t, p, a)
	rl := NewRouterLines(RouterLinesConfig{Client: c.Client(), Leader: newLeader(addrOf(srv)).get, HTTP: p.httpClient()})
	defer rl.Close()
	waitFor(t, "the routes", 5*time.Second, func() bool { _, ok := rl.routes.Get(store.RoutesPrefix + "r1"); return ok })
	line := func(route, host, path string, status int) []byte {
		return []byte(fmt.Sprintf(`{"time":"2026-12-02T07:00:00.123456789Z","request_id":"req1","method":"GET","host":%q,"path":%q,"status":%d,"bytes":12,"duration_ms":1.5,"route":%q,"backend":"10.0.0.5:41000","client_ip":"203.0.113.7"}`+"\n", host, path, status, route))
	}
	rl.Write(line("r1", "shop.example.com", "/cart", 200))
	rl.Write(line("auto-blog", "blog.localhost:8080", "/", 502))
	rl.Write(line("", "nowhere.example.com", "/", 404)) // no route: no app
	rl.Write([]byte("not json\n"))
	waitFor(t, "the router lines", 5*time.Second, func() bool {
		v1, _ := a.tail("shop", 10, filter{process: "router"})
		v2, _ := a.tail("blog", 10, filter{process: "router"})
		return len(v1.lines) == 1 && len(v2.lines) == 1
	})
	v, _ := a.tail("shop", 10, filter{})
	want := `at=info method=GET path="/cart" host=shop.example.com request_id=req1 fwd="203.0.113.7" backend=10.0.0.5:41000 service=1.500ms status=200 bytes=12`
	if l := v.lines[0]; l.Text != want || l.Source != api.LogSourcePier || l.Dyno() != "router" || !l.Time.Equal(time.Date(2026, 12, 2, 7, 0, 0, 123456789, time.UTC)) {
		t.Fatalf("line %+v\nwant text %s", l, want)
	}
	if v, _ := a.tail("blog", 10, filter{}); v.lines[0].Text[:8] != "at=error" {
		t.Fatalf("blog line %q", v.lines[0].Text)
	}
	if st := a.Stats(); st.Apps != 2 {
		t.Fatalf("stats %+v", st)
	}
}
