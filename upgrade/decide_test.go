package upgrade

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/pierpaas/pier/api"
)

func TestPlanOrder(t *testing.T) {
	nodes := []api.Node{
		{Kind: api.NodeRouter, Name: "r1", SHA256: "old"},
		{Kind: api.NodeHost, Name: "h2", SHA256: "old"},
		{Kind: api.NodeServer, Name: "s2", SHA256: "old"},
		{Kind: api.NodeServer, Name: "s1", SHA256: "old"},
		{Kind: api.NodeServer, Name: "s3", SHA256: "old"},
		{Kind: api.NodeHost, Name: "h1", SHA256: "new"},
	}
	steps := Plan(nodes, "s1", "new")
	var got []string
	for _, s := range steps {
		got = append(got, s.Node+":"+string(s.State))
	}
	want := []string{"server/s2:pending", "server/s3:pending", "server/s1:pending", // the etcd leader last
		"host/h1:skipped", "host/h2:pending", "router/r1:pending"}
	if !slices.Equal(got, want) {
		t.Errorf("plan %v, want %v", got, want)
	}
	if steps[0].From != "old" {
		t.Errorf("From %q, want the node's digest", steps[0].From)
	}
}

// run drives Next with a scripted world until the upgrade ends or the
// clock passes limit, and returns the orders given in turn.
type world struct {
	t     *testing.T
	now   time.Time
	nodes map[string]*api.Node
	// bad nodes crash with the new binary: their guard puts the old one back.
	bad    map[string]bool
	orders []string
}

func (w *world) observe() map[string]Observed {
	out := map[string]Observed{}
	for k, n := range w.nodes {
		cp := *n
		out[k] = Observed{Node: &cp}
	}
	return out
}

// obey is what a node does with an order, at once.
func (w *world) obey(o api.NodeOrder) {
	w.orders = append(w.orders, o.ID)
	n := w.nodes[o.Node]
	switch {
	case o.SHA256 != n.SHA256 && w.bad[o.Node] && o.Trial > 0:
		n.Failed, n.Error = o.ID, "exited with status 1"
	case o.SHA256 != n.SHA256:
		n.SHA256 = o.SHA256
		if o.Trial > 0 {
			n.Trial = o.ID
		} else {
			n.Committed = o.ID
		}
	case o.Commit:
		n.Trial, n.Committed = "", o.ID
	}
}

func (w *world) run(u api.Upgrade) api.Upgrade {
	for range 100 {
		d := Next(u, w.observe(), w.now)
		for _, o := range d.Orders {
			w.obey(o)
		}
		u = d.Upgrade
		if u.State.Done() {
			return u
		}
		w.now = w.now.Add(time.Second)
	}
	w.t.Fatalf("upgrade not done: %+v", u)
	return u
}

func newWorld(t *testing.T, names ...string) (*world, api.Upgrade) {
	w := &world{t: t, now: time.Unix(1000, 0), nodes: map[string]*api.Node{}, bad: map[string]bool{}}
	var nodes []api.Node
	for _, n := range names {
		kind, name, _ := cut(n)
		node := api.Node{Kind: api.NodeKind(kind), Name: name, SHA256: "old"}
		w.nodes[n] = &node
		nodes = append(nodes, node)
	}
	u := api.Upgrade{ID: "u1", SHA256: "new", Trial: api.Duration(time.Minute), State: api.UpgradeRunning,
		Steps: Plan(nodes, "", "new")}
	return w, u
}

func cut(s string) (string, string, bool) {
	for i := range s {
		if s[i] == '/' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func TestNextUpgradesEveryNodeInTurn(t *testing.T) {
	w, u := newWorld(t, "server/s1", "server/s2", "host/h1", "router/r1")
	u = w.run(u)
	if u.State != api.UpgradeComplete {
		t.Fatalf("state %s (%s), want complete", u.State, u.Reason)
	}
	want := []string{"u1-0-try", "u1-0-commit", "u1-1-try", "u1-1-commit", "u1-2-try", "u1-2-commit", "u1-3-try", "u1-3-commit"}
	if !slices.Equal(w.orders, want) {
		t.Errorf("orders %v, want %v", w.orders, want)
	}
	for k, n := range w.nodes {
		if n.SHA256 != "new" {
			t.Errorf("%s runs %s", k, n.SHA256)
		}
	}
}

func TestNextStopsAndRollsBackOnFirstFailure(t *testing.T) {
	w, u := newWorld(t, "server/s1", "server/s2", "host/h1")
	w.bad["server/s2"] = true
	u = w.run(u)
	if u.State != api.UpgradeFailed {
		t.Fatalf("state %s, want failed", u.State)
	}
	// s1 was upgraded, then rolled back; s2 failed and went back by its
	// guard; h1 was never touched.
	want := []string{"u1-0-try", "u1-0-commit", "u1-1-try", "u1-0-rollback"}
	if !slices.Equal(w.orders, want) {
		t.Errorf("orders %v, want %v", w.orders, want)
	}
	for k, n := range w.nodes {
		if n.SHA256 != "old" {
			t.Errorf("%s runs %s after the rollback", k, n.SHA256)
		}
	}
	states := []api.StepState{u.Steps[0].State, u.Steps[1].State, u.Steps[2].State}
	if !slices.Equal(states, []api.StepState{api.StepRolledBack, api.StepFailed, api.StepPending}) {
		t.Errorf("steps %v", states)
	}
	if u.Reason == "" || u.FinishedAt.IsZero() {
		t.Errorf("reason %q, finished %v", u.Reason, u.FinishedAt)
	}
}

func TestNextWaitsForHealthThenTimesOut(t *testing.T) {
	now := time.Unix(1000, 0)
	u := api.Upgrade{ID: "u1", SHA256: "new", Trial: api.Duration(time.Minute), State: api.UpgradeRunning,
		Steps: []api.UpgradeStep{{Node: "server/s1", Kind: api.NodeServer, Name: "s1", State: api.StepTrying,
			Order: "u1-0-try", From: "old", Since: now}}}
	upNotReady := Observed{Node: &api.Node{SHA256: "new", Trial: "u1-0-try"}, Ready: errors.New("503")}
	cases := []struct {
		name  string
		obs   Observed
		after time.Duration
		want  api.StepState
	}{
		{"registered, not ready: wait", upNotReady, 10 * time.Second, api.StepTrying},
		{"not registered: wait", Observed{}, 10 * time.Second, api.StepTrying},
		{"ready but etcd member unhealthy: wait", Observed{Node: upNotReady.Node, Healthy: errors.New("learner")}, 10 * time.Second, api.StepTrying},
		{"ready and healthy: commit", Observed{Node: upNotReady.Node}, 10 * time.Second, api.StepCommitting},
		{"still the old binary: wait", Observed{Node: &api.Node{SHA256: "old"}}, 10 * time.Second, api.StepTrying},
		{"not ready past the trial less the margin: fail", upNotReady, 46 * time.Second, api.StepFailed},
		{"went back by itself: fail at once", Observed{Node: &api.Node{SHA256: "old", Failed: "u1-0-try"}}, time.Second, api.StepFailed},
	}
	for _, c := range cases {
		d := Next(u, map[string]Observed{"server/s1": c.obs}, now.Add(c.after))
		if got := d.Upgrade.Steps[0].State; got != c.want {
			t.Errorf("%s: step %s, want %s", c.name, got, c.want)
		}
		if c.want == api.StepFailed && d.Upgrade.State != api.UpgradeRollingBack {
			t.Errorf("%s: upgrade %s, want rolling back", c.name, d.Upgrade.State)
		}
	}
	if u.Steps[0].State != api.StepTrying {
		t.Error("Next changed the record it was given")
	}
}

func TestNextRouterOrdersCarryTheDrain(t *testing.T) {
	w, u := newWorld(t, "host/h1", "router/r1")
	u.Drain = api.Duration(3 * time.Second)
	var drains []api.Duration
	for range 20 {
		d := Next(u, w.observe(), w.now)
		for _, o := range d.Orders {
			if !o.Commit {
				drains = append(drains, o.Drain)
			}
			w.obey(o)
		}
		u = d.Upgrade
		w.now = w.now.Add(time.Second)
	}
	if !slices.Equal(drains, []api.Duration{0, api.Duration(3 * time.Second)}) {
		t.Errorf("drains %v: only the router waits", drains)
	}
}
