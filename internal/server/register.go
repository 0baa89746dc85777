package server

import (
	"context"
	"errors"
	"net"
	"syscall"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/discovery"
)

// registerAPI lists this server's API port in discovery under its name
// (api.ServersService) until ctx ends; discovery registers it again
// after a lost lease.
func (s *Server) registerAPI(ctx context.Context) {
	g := s.reg.RegisterRetrying(ctx, api.ServersService, discovery.Instance{ID: s.cfg.Name, Addr: s.cfg.APIAddr(), Proto: "https"})
	if g == nil {
		return
	}
	<-ctx.Done()
	g.Close()
}

// deadServer says whether the server named name is certainly down: its
// API port, as discovery lists it, refuses connections. A timeout proves
// nothing (a partition gives one too), nor does a server discovery does
// not list.
func (s *Server) deadServer(ctx context.Context, name string) bool {
	insts, err := s.reg.Instances(ctx, api.ServersService)
	if err != nil {
		return false
	}
	for _, inst := range insts {
		if inst.ID != name {
			continue
		}
		d := net.Dialer{Timeout: 500 * time.Millisecond}
		conn, err := d.DialContext(ctx, "tcp", inst.Addr)
		if err == nil {
			conn.Close()
			return false
		}
		return errors.Is(err, syscall.ECONNREFUSED)
	}
	return false
}
