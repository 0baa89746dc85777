package controller

import (
	"testing"
	"time"
	_ "time/tzdata" // the zones below, whatever the machine has

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/store"
)

func TestLastDue(t *testing.T) {
	if _, err := time.LoadLocation("Europe/Paris"); err != nil {
		t.Fatal(err)
	}
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tc := range []struct {
		at, zone, now, want string
	}{
		{"02:00", "", "2025-03-10T12:00:00Z", "2025-03-10T02:00:00Z"},
		{"02:00", "", "2025-03-10T01:59:59Z", "2025-03-09T02:00:00Z"},
		{"02:00", "", "2025-03-10T02:00:00Z", "2025-03-10T02:00:00Z"},
		{"23:30", "", "2025-01-01T00:10:00Z", "2024-12-31T23:30:00Z"},
		// 02:00 in Paris is 01:00 UTC in winter, 00:00 UTC in summer.
		{"02:00", "Europe/Paris", "2025-01-15T01:30:00Z", "2025-01-15T01:00:00Z"},
		{"02:00", "Europe/Paris", "2025-07-15T00:30:00Z", "2025-07-15T00:00:00Z"},
	} {
		got, err := lastDue(api.BackupSchedule{At: tc.at, Zone: tc.zone}, at(tc.now))
		if err != nil || !got.Equal(at(tc.want)) {
			t.Errorf("%s %s at %s: %v %v, want %s", tc.at, tc.zone, tc.now, got.UTC(), err, tc.want)
		}
	}
	if _, err := lastDue(api.BackupSchedule{At: "2am"}, time.Now()); err == nil {
		t.Error("2am is not HH:MM")
	}
}

func TestHaveScheduled(t *testing.T) {
	due := time.Date(2025, 3, 10, 2, 0, 0, 0, time.UTC)
	item := func(res string, scheduled bool, at time.Time) store.Item[api.Backup] {
		return store.Item[api.Backup]{Value: api.Backup{Resource: res, Scheduled: scheduled, CreatedAt: at}}
	}
	backups := []store.Item[api.Backup]{
		item("db", false, due.Add(time.Hour)),     // captured by hand: does not count
		item("db", true, due.Add(-24*time.Hour)),  // yesterday's
		item("other", true, due.Add(time.Minute)), // another resource's
	}
	if haveScheduled(backups, "db", due) {
		t.Fatal("db has no scheduled backup since it was due")
	}
	backups = append(backups, item("db", true, due.Add(time.Second)))
	if !haveScheduled(backups, "db", due) {
		t.Fatal("db's scheduled backup since it was due is not seen")
	}
}
