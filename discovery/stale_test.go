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

// Evict removes an instance at once by revoking its lease; a live owner
// registers again, behind the others.
func TestEvict(t *testing.T) {
	ctx := t.Context()
	r := New(storetest.NewCluster(t, 1).Client(), WithPrefix("/evict"))
	first, err := r.Register(ctx, "pier-logs", Instance{ID: "s1", Addr: "10.0.0.1:7300"}, WithTTL(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	second, err := r.Register(ctx, "pier-logs", Instance{ID: "s2", Addr: "10.0.0.2:7300"}, WithTTL(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	if ok, err := r.Evict(ctx, "pier-logs", "s1"); !ok || err != nil {
		t.Fatalf("evict s1: %v %v", ok, err)
	}
	// Gone at once, not when its lease would have run out.
	if insts, err := r.Instances(ctx, "pier-logs"); err != nil || len(insts) != 1 || insts[0].ID != "s2" {
		t.Fatalf("instances just after the eviction: %v %v", insts, err)
	}
	if ok, err := r.Evict(ctx, "pier-logs", "nobody"); ok || err != nil {
		t.Fatalf("evict of a missing instance: %v %v", ok, err)
	}
	// s2 leads now; s1, alive after all, comes back behind it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		insts, err := r.Instances(ctx, "pier-logs")
		if err == nil && len(insts) == 2 && insts[0].ID == "s2" && insts[1].ID == "s1" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("instances after the eviction: %v %v", insts, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
