package api

import (
	"strings"
	"testing"
)

func TestVolumeValidate(t *testing.T) {
	data := VolumeSpec{Name: "data", Path: "/data", SizeMB: 100}
	for _, tc := range []struct {
		name string
		vs   []VolumeSpec
		err  string
	}{
		{"ok", []VolumeSpec{data}, ""},
		{"two", []VolumeSpec{data, {Name: "wal", Path: "/var/lib/wal", SizeMB: 10}}, ""},
		{"max size", []VolumeSpec{{Name: "big", Path: "/big", SizeMB: MaxVolumeMB}}, ""},
		{"name upper", []VolumeSpec{{Name: "Data", Path: "/data", SizeMB: 1}}, "DNS label"},
		{"name slash", []VolumeSpec{{Name: "a/b", Path: "/data", SizeMB: 1}}, "DNS label"},
		{"name empty", []VolumeSpec{{Path: "/data", SizeMB: 1}}, "DNS label"},
		{"name long", []VolumeSpec{{Name: strings.Repeat("a", 41), Path: "/data", SizeMB: 1}}, "longer than"},
		{"relative", []VolumeSpec{{Name: "d", Path: "data", SizeMB: 1}}, "must be absolute"},
		{"empty path", []VolumeSpec{{Name: "d", SizeMB: 1}}, "must be absolute"},
		{"unclean", []VolumeSpec{{Name: "d", Path: "/data/../etc", SizeMB: 1}}, "not clean"},
		{"trailing slash", []VolumeSpec{{Name: "d", Path: "/data/", SizeMB: 1}}, "not clean"},
		{"comma", []VolumeSpec{{Name: "d", Path: "/da,ta", SizeMB: 1}}, "character"},
		{"root", []VolumeSpec{{Name: "d", Path: "/", SizeMB: 1}}, "system directory /"},
		{"proc", []VolumeSpec{{Name: "d", Path: "/proc", SizeMB: 1}}, "system directory /proc"},
		{"under sys", []VolumeSpec{{Name: "d", Path: "/sys/fs/x", SizeMB: 1}}, "system directory /sys"},
		{"under dev", []VolumeSpec{{Name: "d", Path: "/dev/shm", SizeMB: 1}}, "system directory /dev"},
		{"pier", []VolumeSpec{{Name: "d", Path: "/.pier/x", SizeMB: 1}}, "system directory /.pier"},
		{"app", []VolumeSpec{{Name: "d", Path: "/app", SizeMB: 1}}, "system directory /app"},
		{"near system dir", []VolumeSpec{{Name: "d", Path: "/procs", SizeMB: 1}}, ""},
		{"zero size", []VolumeSpec{{Name: "d", Path: "/data", SizeMB: 0}}, "size must be positive"},
		{"negative size", []VolumeSpec{{Name: "d", Path: "/data", SizeMB: -5}}, "size must be positive"},
		{"too big", []VolumeSpec{{Name: "d", Path: "/data", SizeMB: MaxVolumeMB + 1}}, "over the maximum"},
		{"same name", []VolumeSpec{data, {Name: "data", Path: "/other", SizeMB: 1}}, "declared twice"},
		{"same path", []VolumeSpec{data, {Name: "other", Path: "/data", SizeMB: 1}}, "overlap"},
		{"nested path", []VolumeSpec{data, {Name: "other", Path: "/data/sub", SizeMB: 1}}, "overlap"},
		{"nesting path", []VolumeSpec{{Name: "other", Path: "/data/sub", SizeMB: 1}, data}, "overlap"},
	} {
		r := Release{ID: "db-v1", App: "db", Processes: map[string]ProcessType{"pg": {Args: []string{"x"}, Volumes: tc.vs}}}
		err := r.Validate()
		if (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: Validate = %v, want %q", tc.name, err, tc.err)
		}
	}
}

func TestVolumeProcessTypeLimits(t *testing.T) {
	vs := []VolumeSpec{{Name: "data", Path: "/data", SizeMB: 1}}
	for _, tc := range []struct {
		name string
		pt   ProcessType
		err  string
	}{
		{"omni", ProcessType{Args: []string{"x"}, Omni: true, Volumes: vs}, "omni"},
		{"cron", ProcessType{Args: []string{"x"}, Schedule: "@hourly", Volumes: vs}, "cron"},
	} {
		if err := tc.pt.Validate("p"); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: Validate = %v, want %q", tc.name, err, tc.err)
		}
	}
}

func TestJobVolumesValidate(t *testing.T) {
	job := func(vs ...JobVolume) *Job {
		return &Job{ID: "j1", HostID: "h1", Args: []string{"x"}, Desired: DesiredRunning, Volumes: vs}
	}
	good := JobVolume{ID: VolumeID("db", "pg", "data"), VolumeSpec: VolumeSpec{Name: "data", Path: "/data", SizeMB: 1}}
	if err := job(good).Validate(); err != nil {
		t.Fatal(err)
	}
	bad := good
	bad.ID = "../etc"
	if err := job(bad).Validate(); err == nil || !strings.Contains(err.Error(), "invalid volume id") {
		t.Errorf("bad id: %v", err)
	}
	twice := good
	twice.ID = "other"
	if err := job(good, twice).Validate(); err == nil || !strings.Contains(err.Error(), "declared twice") {
		t.Errorf("duplicate: %v", err)
	}
	bad = good
	bad.Path = "/proc/x"
	if err := job(bad).Validate(); err == nil || !strings.Contains(err.Error(), "system directory") {
		t.Errorf("system path: %v", err)
	}
}

func TestVolumeID(t *testing.T) {
	a, b := VolumeID("a-b", "c", "data"), VolumeID("a", "b-c", "data")
	if a == b {
		t.Fatalf("ambiguous ids: %s", a)
	}
	if a != VolumeID("a-b", "c", "data") {
		t.Fatal("not deterministic")
	}
	long := VolumeID(strings.Repeat("a", 63), strings.Repeat("b", 63), strings.Repeat("c", maxVolumeName))
	if !ValidID(long) || !ValidID(a) || !strings.HasPrefix(a, "data-") {
		t.Fatalf("ids %q %q", a, long)
	}
}
