package server

import (
	"context"
	"net/http"

	"github.com/pierpaas/pier/logs"
)

// startLogs runs this server's log aggregator until ctx ends: its
// endpoints on the API port (for cluster certificates), and its campaign
// to be the active one. Only the active aggregator takes lines, tells the
// platform's events and feeds the drains; the others stand by.
func (s *Server) startLogs(ctx context.Context) {
	agg := logs.NewAggregator(logs.Config{Registry: s.cfg.Registry, Log: s.cfg.Log, LeaderDead: s.deadServer})
	drains := logs.NewDrains(logs.DrainsConfig{Client: s.Client, Log: s.cfg.Log, Registry: s.cfg.Registry})
	agg.SetForwarder(drains.Forward)
	// The API's mux is already serving; ServeMux takes new patterns at
	// any time.
	if mux, ok := s.api.Handler.(*http.ServeMux); ok {
		mux.Handle("/v1/logs/", agg.Handler())
	}
	platform := &logs.Platform{Client: s.Client, Emit: agg.Emit, Log: s.cfg.Log}
	go agg.Lead(ctx, s.reg, s.cfg.Name, s.cfg.APIAddr(), func(active context.Context) {
		go drains.Run(active)
		platform.Run(active)
	})
}
