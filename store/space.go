package store

import (
	"context"
	"errors"
	"fmt"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/storage"
)

// etcd's NOSPACE alarm is how a member out of room stops the cluster's
// writes before they fail half-way: while it is raised, etcd refuses
// what adds data (puts, transactions that put, lease grants) and still
// takes reads, deletions, compactions, lease renewals and alarms. etcd
// raises it itself when its database outgrows its quota, and never
// clears it; pier raises it too when a member's disk runs low (see
// internal/diskguard) and clears both once there is room again.

// ErrNoSpace is the error of a write the store refused for want of space.
var ErrNoSpace = rpctypes.ErrNoSpace

// IsNoSpace reports whether err is a write refused for want of space.
func IsNoSpace(err error) bool {
	return errors.Is(err, rpctypes.ErrNoSpace) || errors.Is(err, rpctypes.ErrGRPCNoSpace)
}

// NoSpace reports whether this member's NOSPACE alarm is raised.
func (m *Member) NoSpace() bool {
	id := m.etcd.Server.MemberID()
	for _, a := range m.etcd.Server.Alarms() {
		if a.Alarm == pb.AlarmType_NOSPACE && a.MemberID == uint64(id) {
			return true
		}
	}
	return false
}

// RaiseNoSpace raises this member's NOSPACE alarm.
func (m *Member) RaiseNoSpace(ctx context.Context) error {
	return m.alarm(ctx, pb.AlarmRequest_ACTIVATE)
}

// ClearNoSpace clears this member's NOSPACE alarm. When its database is
// near its quota (the alarm etcd raises itself), history is compacted
// and the member defragmented first, or the next write would raise it
// again.
func (m *Member) ClearNoSpace(ctx context.Context, client *clientv3.Client) error {
	quota := m.quota()
	if size := m.etcd.Server.Backend().Size(); size > quota*9/10 {
		resp, err := client.Get(ctx, "/pier/compact-probe")
		if err != nil {
			return err
		}
		if _, err := client.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil && !errors.Is(err, rpctypes.ErrCompacted) {
			return fmt.Errorf("store: compact: %w", err)
		}
		if _, err := client.Defragment(ctx, m.cfg.ClientURL); err != nil {
			return fmt.Errorf("store: defragment: %w", err)
		}
		if size := m.etcd.Server.Backend().Size(); size > quota*9/10 {
			return fmt.Errorf("store: the database still takes %d MiB of its %d MiB quota after compaction", size>>20, quota>>20)
		}
	}
	return m.alarm(ctx, pb.AlarmRequest_DEACTIVATE)
}

func (m *Member) alarm(ctx context.Context, action pb.AlarmRequest_AlarmAction) error {
	_, err := m.etcd.Server.Alarm(ctx, &pb.AlarmRequest{
		Action: action, MemberID: uint64(m.etcd.Server.MemberID()), Alarm: pb.AlarmType_NOSPACE,
	})
	if err != nil {
		return fmt.Errorf("store: %s NOSPACE alarm: %w", action, err)
	}
	return nil
}

// quota is the member's database quota in bytes.
func (m *Member) quota() int64 {
	if q := m.etcd.Config().QuotaBackendBytes; q > 0 {
		return q
	}
	return storage.DefaultQuotaBytes
}
