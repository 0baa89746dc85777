package cron_test

import (
	"errors"
	"testing"
	"time"

	"github.com/pierpaas/pier/scheduler/cron"
)

func at(s string) time.Time {
	t, err := time.Parse("2006-01-02 15:04:05", s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestNext(t *testing.T) {
	for _, tc := range []struct {
		expr, from string
		want       []string
	}{
		{"*/5 * * * *", "2026-03-01 10:02:30", []string{"2026-03-01 10:05:00", "2026-03-01 10:10:00"}},
		{"*/5 * * * *", "2026-03-01 10:05:00", []string{"2026-03-01 10:10:00"}},
		{"0 * * * *", "2026-03-01 23:30:00", []string{"2026-03-02 00:00:00", "2026-03-02 01:00:00"}},
		{"30 2 * * *", "2026-12-31 03:00:00", []string{"2027-01-01 02:30:00"}},
		{"0 9 * * mon-fri", "2026-03-06 10:00:00", []string{"2026-03-09 09:00:00", "2026-03-10 09:00:00"}}, // Fri → Mon
		{"0 0 * * 7", "2026-03-01 00:00:00", []string{"2026-03-08 00:00:00"}},                              // 7 is Sunday
		{"0 0 29 feb *", "2026-01-01 00:00:00", []string{"2028-02-29 00:00:00"}},
		{"0 0 1,15 * 1", "2026-03-01 00:00:00", []string{"2026-03-02 00:00:00", "2026-03-09 00:00:00", "2026-03-15 00:00:00"}}, // either day field
		{"5/20 * * * *", "2026-03-01 10:00:00", []string{"2026-03-01 10:05:00", "2026-03-01 10:25:00", "2026-03-01 10:45:00", "2026-03-01 11:05:00"}},
		{"0-10/5 1 * * *", "2026-03-01 00:00:00", []string{"2026-03-01 01:00:00", "2026-03-01 01:05:00", "2026-03-01 01:10:00", "2026-03-02 01:00:00"}},
		{"@hourly", "2026-03-01 10:00:00", []string{"2026-03-01 11:00:00"}},
		{"@weekly", "2026-03-03 00:00:00", []string{"2026-03-08 00:00:00"}},
		{"@monthly", "2026-03-03 00:00:00", []string{"2026-04-01 00:00:00"}},
		{"@yearly", "2026-03-03 00:00:00", []string{"2027-01-01 00:00:00"}},
		{"@every 90s", "2026-03-01 10:00:10", []string{"2026-03-01 10:01:40", "2026-03-01 10:03:10"}},
	} {
		s, err := cron.Parse(tc.expr)
		if err != nil {
			t.Fatalf("%q: %v", tc.expr, err)
		}
		cur := at(tc.from)
		for _, w := range tc.want {
			cur = s.Next(cur)
			if !cur.Equal(at(w)) {
				t.Errorf("%q from %s: got %s, want %s", tc.expr, tc.from, cur, w)
				break
			}
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, expr := range []string{"", "* * * *", "* * * * * *", "60 * * * *", "* 24 * * *", "* * 0 * *",
		"* * * 13 *", "* * * * 8", "*/0 * * * *", "5-1 * * * *", "a * * * *", "@sometimes", "@every", "@every 10ms",
		"@every soon", "@everyday", "0 0 30 2 *"} {
		if _, err := cron.Parse(expr); !errors.Is(err, cron.ErrSyntax) {
			t.Errorf("%q: %v, want a syntax error", expr, err)
		}
	}
}

func TestLatest(t *testing.T) {
	every, _ := cron.Parse("@every 10s")
	last, n := cron.Latest(every, at("2026-03-01 10:00:00"), at("2026-03-01 10:00:35"))
	if !last.Equal(at("2026-03-01 10:00:30")) || n != 3 {
		t.Errorf("every: %s, %d", last, n)
	}
	if last, n := cron.Latest(every, at("2026-03-01 10:00:00"), at("2026-03-01 10:00:09")); !last.IsZero() || n != 0 {
		t.Errorf("every, none due: %s, %d", last, n)
	}
	min5, _ := cron.Parse("*/5 * * * *")
	last, n = cron.Latest(min5, at("2026-03-01 10:00:00"), at("2026-03-01 10:17:00"))
	if !last.Equal(at("2026-03-01 10:15:00")) || n != 3 {
		t.Errorf("*/5: %s, %d", last, n)
	}
	// A year away: the count stops at the bound, the tick is still the latest.
	each, _ := cron.Parse("* * * * *")
	last, n = cron.Latest(each, at("2025-03-01 10:00:00"), at("2026-03-01 10:17:30"))
	if !last.Equal(at("2026-03-01 10:17:00")) || n < 10000 {
		t.Errorf("a year of minutes: %s, %d", last, n)
	}
}
