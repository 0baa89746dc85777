package agent

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
)

// ports hands out host ports from a range. A port is skipped if something
// outside pier already listens on it.
type ports struct {
	mu        sync.Mutex
	ip        string
	low, high int
	used      map[int]bool
	next      int
}

var errNoPorts = errors.New("no free port in the host's range")

func newPorts(ip string, low, high int) *ports {
	// Start anywhere in the range: agents sharing a machine (tests, pier
	// up beside a host) would otherwise all try the low ports first, and
	// two could hand out the same port between its check and its bind.
	return &ports{ip: ip, low: low, high: high, used: map[int]bool{}, next: low + rand.IntN(high-low+1)}
}

func (p *ports) reserve(ns []int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, n := range ns {
		p.used[n] = true
	}
}

func (p *ports) release(ns []int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, n := range ns {
		delete(p.used, n)
	}
}

// allocate returns n free ports, all or none.
func (p *ports) allocate(n int) ([]int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var got []int
	for tries := 0; len(got) < n && tries <= p.high-p.low; tries++ {
		port := p.next
		p.next++
		if p.next > p.high {
			p.next = p.low
		}
		if p.used[port] || !free(p.ip, port) {
			continue
		}
		p.used[port] = true
		got = append(got, port)
	}
	if len(got) < n {
		for _, port := range got {
			delete(p.used, port)
		}
		return nil, fmt.Errorf("%w %d-%d", errNoPorts, p.low, p.high)
	}
	return got, nil
}

func free(ip string, port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}
