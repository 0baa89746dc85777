package server

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
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

// deadServer says whether the server named name is certainly down: a
// connection to its API port, as discovery lists it, is refused. A
// timeout proves nothing (a partition gives one too), nor does a server
// discovery does not list. The probe is a GET /livez over a kept-alive
// connection, so probing a live server costs one request, not a
// connection (nor a handshake error in its log) each time.
func (s *Server) deadServer(ctx context.Context, name string) bool {
	insts, err := s.reg.Instances(ctx, api.ServersService)
	if err != nil {
		return false
	}
	for _, inst := range insts {
		if inst.ID != name {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(pctx, http.MethodGet, "https://"+inst.Addr+"/livez", nil)
		if err != nil {
			return false
		}
		resp, err := s.probes.Do(req)
		if err != nil {
			return errors.Is(err, syscall.ECONNREFUSED)
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		return false
	}
	return false
}

// newProbeClient is deadServer's client: the cluster's certificates, and
// a short dial timeout.
func (s *Server) newProbeClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = s.Creds.ClientConfig()
	tr.DialContext = (&net.Dialer{Timeout: 500 * time.Millisecond}).DialContext
	return &http.Client{Transport: tr}
}
