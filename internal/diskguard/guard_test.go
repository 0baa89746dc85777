package diskguard

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeDisk is a filesystem whose free space the test sets; the reserve
// file's blocks count as used, as on a real one.
type fakeDisk struct {
	dir         string
	free, total int64
}

func (d *fakeDisk) statfs(string) (int64, int64, error) {
	held := int64(0)
	if fi, err := os.Stat(filepath.Join(d.dir, ReserveFile)); err == nil {
		held = fi.Size()
	}
	return d.free - held, d.total, nil
}

func TestUnderPressure(t *testing.T) {
	for _, tc := range []struct {
		was                bool
		free, low, missing int64
		want               bool
	}{
		{false, 100, 64, 0, false},
		{false, 63, 64, 0, true},
		{true, 63, 64, 16, true},
		{true, 64 + 16 + 31, 64, 16, true}, // hysteresis: half the threshold again
		{true, 64 + 16 + 32, 64, 16, false},
		{true, 96, 64, 0, false},
	} {
		if got := underPressure(tc.was, tc.free, tc.low, tc.missing); got != tc.want {
			t.Errorf("underPressure(%v, free %d, low %d, missing %d) = %v", tc.was, tc.free, tc.low, tc.missing, got)
		}
	}
}

func TestGuardMovesTheReserve(t *testing.T) {
	dir := t.TempDir()
	disk := &fakeDisk{dir: dir, free: 1000 * mib, total: 4000 * mib}
	g, err := New(Config{Dir: dir, Low: 200 * mib, Reserve: 50 * mib, statfs: disk.statfs})
	if err != nil {
		t.Fatal(err)
	}
	reserve := filepath.Join(dir, ReserveFile)
	if fi, err := os.Stat(reserve); err != nil || fi.Size() != 50*mib {
		t.Fatalf("reserve after start: %v, %v", fi, err)
	}
	var seen []bool
	g.OnChange(func(s Status) { seen = append(seen, s.Pressure) })

	// Something else fills the disk: pressure, and the reserve goes.
	disk.free = 220 * mib // 170 free beside the 50 held
	s := g.Check()
	if !s.Pressure || s.Free != 220*mib {
		t.Fatalf("at 170 MiB free: %+v", s)
	}
	if _, err := os.Stat(reserve); !os.IsNotExist(err) {
		t.Fatalf("reserve kept under pressure: %v", err)
	}
	if err := s.Refuse("a build"); !errors.Is(err, ErrPressure) || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "a build refused") {
		t.Fatalf("Refuse: %v", err)
	}
	// Room for the reserve but not the hysteresis: still under pressure.
	disk.free = 200*mib + 50*mib + 50*mib
	if s := g.Check(); !s.Pressure {
		t.Fatalf("out of pressure too soon: %+v", s)
	}
	disk.free = 200*mib + 50*mib + 100*mib
	if s := g.Check(); s.Pressure || s.Refuse("x") != nil {
		t.Fatalf("still under pressure with room: %+v", s)
	}
	if fi, err := os.Stat(reserve); err != nil || fi.Size() != 50*mib {
		t.Fatalf("reserve not taken back: %v, %v", fi, err)
	}
	if len(seen) != 2 || !seen[0] || seen[1] {
		t.Fatalf("watchers saw %v, want [true false]", seen)
	}
}

func TestGuardStartsOnAFullDisk(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, ReserveFile), make([]byte, 1<<20), 0o600)
	disk := &fakeDisk{dir: dir, free: 10 * mib, total: 4000 * mib}
	g, err := New(Config{Dir: dir, statfs: disk.statfs})
	if err != nil {
		t.Fatal(err)
	}
	if s := g.Status(); !s.Pressure || s.Low != 200*mib {
		t.Fatalf("status: %+v", s)
	}
	if _, err := os.Stat(filepath.Join(dir, ReserveFile)); !os.IsNotExist(err) {
		t.Fatalf("a daemon starting on a full disk kept its reserve: %v", err)
	}
}
