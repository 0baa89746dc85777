package agent

import (
	"errors"
	"net"
	"testing"
)

func TestPortsAllocate(t *testing.T) {
	// A range of 8 ports, one of them taken by someone else.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	taken := ln.Addr().(*net.TCPAddr).Port
	low := taken - 3
	p := newPorts("127.0.0.1", low, low+7)
	seen := map[int]bool{}
	for range 7 {
		got, err := p.allocate(1)
		if err != nil {
			t.Fatal(err)
		}
		if seen[got[0]] || got[0] == taken || got[0] < low || got[0] > low+7 {
			t.Fatalf("allocated %d (taken %d, seen %v)", got[0], taken, seen)
		}
		seen[got[0]] = true
	}
	if _, err := p.allocate(1); !errors.Is(err, errNoPorts) {
		t.Fatalf("a full range: %v", err)
	}
	var one int
	for port := range seen {
		one = port
		break
	}
	p.release([]int{one})
	if _, err := p.allocate(2); !errors.Is(err, errNoPorts) {
		t.Fatalf("two ports from one free: %v", err)
	}
	if got, err := p.allocate(1); err != nil || got[0] != one {
		t.Fatalf("after release: %v, %v (want %d)", got, err, one)
	}
}
