package discovery

import (
	"slices"
	"testing"
	"time"

	"github.com/pierpaas/pier/store/storetest"
)

// DropLease removes a lease's instances but those kept, and those
// registered again on another lease meanwhile.
func TestDropLease(t *testing.T) {
	ctx := t.Context()
	r := New(storetest.NewCluster(t, 1).Client(), WithPrefix("/drop"))
	old, err := r.NewSession(ctx, time.Minute) // lives on, as a restored lease would
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := r.NewSession(ctx, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	reg := func(sess *Session, id string) {
		t.Helper()
		inst := Instance{ID: id, Addr: "10.0.0.1:80", Meta: map[string]string{"job": id}}
		if _, err := r.Register(ctx, "web.app", inst, WithSession(sess)); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"alive", "dead1", "dead2", "moved"} {
		reg(old, id)
	}
	reg(fresh, "moved") // registered again by the new run
	reg(fresh, "other")

	n, err := r.DropLease(ctx, old.Lease(), func(inst Instance) bool { return inst.Meta["job"] == "alive" })
	if err != nil || n != 2 {
		t.Fatalf("dropped %d, %v; want the 2 dead ones", n, err)
	}
	insts, err := r.Instances(ctx, "web.app")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, i := range insts {
		ids = append(ids, i.ID)
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"alive", "moved", "other"}) {
		t.Errorf("instances left: %v", ids)
	}
}
