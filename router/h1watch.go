package router

import (
	"net"
	"time"
)

// The client watch. net/http reads from a client's connection for the
// whole of every request, to learn at once when the client leaves; that
// read is a goroutine hand-off and a system call per request. The h1
// server instead marks a connection as waiting on its backend, and a
// sweep every clientWatchDelay/2 starts that read only for connections
// that have waited longer than clientWatchDelay. A client that closes its
// connection then cuts the backend connection, as the direct path does,
// and the request ends as the client's doing (logged 499).

// clientWatchDelay is how long a backend may take before the router
// watches its client: short enough that a client giving up frees its
// backend connection at once, long enough that answers in the usual
// milliseconds never pay for the watch.
const clientWatchDelay = 50 * time.Millisecond

// h1Conn.waitState
const (
	watchNone    = iota // not waiting on a backend
	watchWaiting        // waiting; the sweep may start the read
	watchReading        // the sweep started watchRead
)

// watchClient marks hc as waiting, since start, on the backend behind
// backend.
func (hc *h1Conn) watchClient(backend net.Conn, start time.Time) {
	hc.watched = backend
	hc.waitSince.Store(start.UnixNano())
	hc.waitState.Store(watchWaiting) // publishes watched to the sweep
}

// unwatchClient ends the wait; if the sweep started a read, it is cut
// short and waited for.
func (hc *h1Conn) unwatchClient() {
	if hc.waitState.CompareAndSwap(watchWaiting, watchNone) {
		return
	}
	hc.watchMu.Lock()
	hc.watchOff = true
	hc.c.SetReadDeadline(aLongTimeAgo) // readHead sets the next one
	hc.watchMu.Unlock()
	<-hc.watchDone
	hc.idleDeadline = time.Time{}
	hc.watchOff = false
	hc.waitState.Store(watchNone)
}

// sweep starts the watch of connections whose backends are slow, until
// stop is closed.
func (s *h1Server) sweep(stop <-chan struct{}) {
	tick := time.NewTicker(clientWatchDelay / 2)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-tick.C:
			late := now.Add(-clientWatchDelay).UnixNano()
			s.mu.Lock()
			for hc := range s.conns {
				if hc.waitState.Load() == watchWaiting && hc.waitSince.Load() < late &&
					hc.waitState.CompareAndSwap(watchWaiting, watchReading) {
					go hc.watchRead()
				}
			}
			s.mu.Unlock()
		}
	}
}

// watchRead reads from the client while its backend is slow. The read
// returns when the client closes the connection (the backend connection
// is cut then), when it sends more (the next request; the byte is kept
// in hc.in), or when unwatchClient cuts it short.
func (hc *h1Conn) watchRead() {
	defer func() { hc.watchDone <- struct{}{} }()
	hc.watchMu.Lock()
	if hc.watchOff {
		hc.watchMu.Unlock()
		return
	}
	hc.c.SetReadDeadline(time.Time{})
	hc.watchMu.Unlock()
	n, err := hc.c.Read(hc.in.pending[:])
	if n == 1 {
		hc.in.has = true
		return
	}
	if err != nil && !isTimeout(err) {
		hc.gone.Store(true)
		hc.watched.SetDeadline(aLongTimeAgo)
	}
}
