package server

import (
	"context"
	"time"

	"github.com/pierpaas/pier/internal/diskguard"
)

// The server's data disk (see internal/diskguard): its guard is made
// before the etcd member starts, so that a server starting on a full disk
// gives its reserve back first and etcd has room to open; the member's
// NOSPACE alarm then follows the guard's verdict.

func (s *Server) guardDisk() error {
	g, err := diskguard.New(diskguard.Config{Dir: s.cfg.DataDir, Low: s.cfg.DiskLow, Reserve: s.cfg.DiskReserve, Log: s.cfg.Log})
	if err != nil {
		return err
	}
	s.Disk = g
	return nil
}

// followDisk keeps the embedded member's NOSPACE alarm in step with the
// disk: raised under pressure, cleared when it is over. Level-triggered:
// each change of pressure, and a look every few seconds, compare the two
// and act, so an alarm etcd raised itself (its quota) or one left by a
// previous run is cleared too once there is room.
func (s *Server) followDisk(ctx context.Context) {
	go s.Disk.Run(ctx)
	if s.member == nil {
		return // an external etcd guards its own disk
	}
	for {
		changed := s.Disk.Changed()
		s.syncNoSpace(ctx)
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-time.After(5 * time.Second):
		}
	}
}

func (s *Server) syncNoSpace(ctx context.Context) {
	st := s.Disk.Status()
	raised := s.member.NoSpace()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	switch {
	case st.Pressure && !raised:
		if err := s.member.RaiseNoSpace(ctx); err != nil {
			s.cfg.Log.Error("cannot stop the store's writes on a disk low on space", "err", err)
			return
		}
		s.cfg.Log.Warn("the store takes no writes until space is freed", "reason", st.Reason())
	case !st.Pressure && raised:
		if err := s.member.ClearNoSpace(ctx, s.Client); err != nil {
			s.cfg.Log.Error("cannot let the store take writes again", "err", err)
			return
		}
		s.cfg.Log.Info("the store takes writes again", "free_mib", st.Free>>20)
	}
}
