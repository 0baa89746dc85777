package jobnet

import (
	"net/netip"
	"testing"
)

func TestIPAM(t *testing.T) {
	p := NewIPAM(netip.MustParsePrefix("10.240.3.0/29")) // .2 to .6 for jobs
	var got []netip.Addr
	for {
		a, err := p.Allocate()
		if err != nil {
			break
		}
		got = append(got, a)
	}
	want := []string{"10.240.3.2", "10.240.3.3", "10.240.3.4", "10.240.3.5", "10.240.3.6"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	p.Release(got[1])
	if a, err := p.Allocate(); err != nil || a != got[1] {
		t.Fatalf("after release: %v %v", a, err)
	}
	q := NewIPAM(netip.MustParsePrefix("10.240.4.0/24"))
	q.Reserve(netip.MustParseAddr("10.240.4.2"))
	if a, _ := q.Allocate(); a.String() != "10.240.4.3" {
		t.Fatalf("reserved address handed out: %v", a)
	}
}

func TestPickSubnet(t *testing.T) {
	cluster := netip.MustParsePrefix("10.240.0.0/22") // four /24s
	seen := map[netip.Prefix]bool{}
	for range 4 {
		p, ok := pickSubnet(cluster, 24, func(p netip.Prefix) bool { return seen[p] })
		if !ok || !cluster.Contains(p.Addr()) || p.Bits() != 24 {
			t.Fatalf("pick: %v %v", p, ok)
		}
		seen[p] = true
	}
	if p, ok := pickSubnet(cluster, 24, func(p netip.Prefix) bool { return seen[p] }); ok {
		t.Fatalf("picked %v from a full range", p)
	}
}
