package server

import (
	"context"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/upgrade"
)

// RunUpgrades runs this server's part of rolling upgrades until ctx
// ends: its upgrade loop (elected among the servers), and the follower
// that upgrades this server when its turn comes. kind is NodeUp for a
// `pier up` process, whose one binary is every role's; restart
// re-executes the process (selfexec.Request).
func (s *Server) RunUpgrades(ctx context.Context, kind api.NodeKind, version string, restart func(string)) {
	loop := &upgrade.Loop{Client: s.Client, Creds: s.Creds, Name: s.Name(), Log: s.cfg.Log, LeaderDead: s.deadServer}
	go loop.Run(ctx)
	f := &upgrade.Follower{Client: s.Client, Creds: s.Creds, Kind: kind, Name: s.Name(), Version: version,
		ReadyURL: "https://" + s.cfg.APIAddr() + "/readyz", Health: s.Health, Log: s.cfg.Log, Restart: restart}
	f.Run(ctx)
}
