package controller

import (
	"testing"
	"time"
	_ "time/tzdata"

	"github.com/pierpaas/pier/api"
)

func TestNextClusterBackup(t *testing.T) {
	t0 := time.Date(2026, 3, 28, 12, 0, 0, 0, time.UTC)
	h := func(n float64) time.Time { return t0.Add(time.Duration(n * float64(time.Hour))) }
	every := api.ClusterBackupSchedule{Every: api.Duration(6 * time.Hour), CreatedAt: t0}
	daily := api.ClusterBackupSchedule{At: "02:00", CreatedAt: t0}
	paris := api.ClusterBackupSchedule{At: "02:30", Zone: "Europe/Paris", CreatedAt: t0}
	for _, tc := range []struct {
		name string
		s    api.ClusterBackupSchedule
		st   api.ClusterBackupStatus
		want time.Time
	}{
		{"every: the first at once", every, api.ClusterBackupStatus{}, t0},
		{"every: from the last that worked", every, api.ClusterBackupStatus{LastAttempt: h(1), LastSuccess: h(1)}, h(7)},
		{"every: a failure waits 5 minutes", every, api.ClusterBackupStatus{LastAttempt: h(7), LastSuccess: h(1), LastError: "disk full"}, h(7).Add(5 * time.Minute)},
		{"every: a failure long after is retried at once", every, api.ClusterBackupStatus{LastAttempt: h(2), LastSuccess: h(1), LastError: "x"}, h(7)},
		{"every: a short interval bounds the retry", api.ClusterBackupSchedule{Every: api.Duration(2 * time.Minute), CreatedAt: t0},
			api.ClusterBackupStatus{LastAttempt: h(1), LastError: "x"}, h(1).Add(2 * time.Minute)},
		{"daily: the next 02:00 after it was made", daily, api.ClusterBackupStatus{}, time.Date(2026, 3, 29, 2, 0, 0, 0, time.UTC)},
		{"daily: the next after the last", daily, api.ClusterBackupStatus{LastAttempt: h(14), LastSuccess: h(14)}, time.Date(2026, 3, 30, 2, 0, 0, 0, time.UTC)},
		{"daily: a late run does not skip a day", daily, api.ClusterBackupStatus{LastAttempt: h(38.5), LastSuccess: h(38.5)}, time.Date(2026, 3, 31, 2, 0, 0, 0, time.UTC)},
		{"daily: a failure at 02:00 retried 5 minutes on", daily, api.ClusterBackupStatus{LastAttempt: h(14), LastError: "x"}, time.Date(2026, 3, 29, 2, 5, 0, 0, time.UTC)},
		// 29 March 2026: Paris moves to summer time (02:00 → 03:00):
		// 02:30 does not exist that day and falls at 03:30 CEST (01:30 UTC).
		{"zone: across the change to summer time", paris, api.ClusterBackupStatus{LastSuccess: time.Date(2026, 3, 28, 1, 30, 0, 0, time.UTC)},
			time.Date(2026, 3, 29, 1, 30, 0, 0, time.UTC)},
		{"zone: summer time", paris, api.ClusterBackupStatus{LastSuccess: time.Date(2026, 3, 29, 1, 30, 0, 0, time.UTC)},
			time.Date(2026, 3, 30, 0, 30, 0, 0, time.UTC)},
	} {
		got, err := nextClusterBackup(tc.s, tc.st, t0)
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("%s: %v %v, want %v", tc.name, got, err, tc.want)
		}
	}
}

func TestCheckClusterBackupSchedule(t *testing.T) {
	now := time.Now()
	ok := []api.ClusterBackupScheduleRequest{
		{Every: api.Duration(24 * time.Hour), Dir: "/var/backups/pier/"},
		{At: "02:00", Zone: "Europe/Paris", Dir: "/b", Keep: 30},
	}
	for _, req := range ok {
		s, err := checkClusterBackupSchedule("nightly", req, now)
		if err != nil {
			t.Errorf("%+v: %v", req, err)
		}
		if s.Keep == 0 || s.Dir[len(s.Dir)-1] == '/' {
			t.Errorf("%+v: %+v", req, s)
		}
	}
	bad := []api.ClusterBackupScheduleRequest{
		{Dir: "/b"},
		{Every: api.Duration(time.Hour), At: "02:00", Dir: "/b"},
		{Every: api.Duration(time.Second), Dir: "/b"},
		{Every: api.Duration(time.Hour), Zone: "UTC", Dir: "/b"},
		{At: "25:00", Dir: "/b"},
		{At: "02:00", Zone: "Mars/Olympus", Dir: "/b"},
		{Every: api.Duration(time.Hour), Dir: "relative"},
		{Every: api.Duration(time.Hour), Dir: ""},
		{Every: api.Duration(time.Hour), Dir: "/b", Keep: -3},
	}
	for _, req := range bad {
		if _, err := checkClusterBackupSchedule("nightly", req, now); err == nil {
			t.Errorf("%+v accepted", req)
		}
	}
	if _, err := checkClusterBackupSchedule("Bad/Name", ok[0], now); err == nil {
		t.Error("a bad name accepted")
	}
}
