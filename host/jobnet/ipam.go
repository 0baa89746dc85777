package jobnet

import (
	"errors"
	"net/netip"
	"sync"
)

// ErrNoAddress is returned when every address of the subnet is in use.
var ErrNoAddress = errors.New("jobnet: no free job address in the host's subnet")

// IPAM hands out the job addresses of a host's subnet: every address but
// the network's, the gateway (the first) and the broadcast.
type IPAM struct {
	mu     sync.Mutex
	subnet netip.Prefix
	used   map[netip.Addr]bool
	next   netip.Addr
}

// NewIPAM returns an allocator for subnet.
func NewIPAM(subnet netip.Prefix) *IPAM {
	subnet = subnet.Masked()
	return &IPAM{subnet: subnet, used: map[netip.Addr]bool{}, next: subnet.Addr().Next().Next()}
}

// Reserve marks addresses in use (those of jobs found running).
func (p *IPAM) Reserve(a netip.Addr) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.used[a] = true
}

// Release frees an address.
func (p *IPAM) Release(a netip.Addr) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.used, a)
}

// Allocate returns a free address. It goes round the subnet rather than
// reusing the lowest free one, so an address just released (whose job's
// connections may linger in peers' tables) is the last to come back.
func (p *IPAM) Allocate() (netip.Addr, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	first := p.subnet.Addr().Next().Next()
	for range 1 << (32 - p.subnet.Bits()) {
		a := p.next
		p.next = a.Next()
		if !p.subnet.Contains(p.next) || isBroadcast(p.subnet, p.next) {
			p.next = first
		}
		if p.subnet.Contains(a) && a.Compare(first) >= 0 && !isBroadcast(p.subnet, a) && !p.used[a] {
			p.used[a] = true
			return a, nil
		}
	}
	return netip.Addr{}, ErrNoAddress
}

func isBroadcast(p netip.Prefix, a netip.Addr) bool {
	return p.Contains(a) && !p.Contains(a.Next())
}
