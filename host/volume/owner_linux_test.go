package volume

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func owner(t *testing.T, p string) [2]int {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return [2]int{int(st.Uid), int(st.Gid)}
}

// TestEnsureReowns: a volume made for uid 1000 is given, once, to the new
// uid of its job: what 1000 owned, symlinks themselves included; not
// other owners' files, and never a host file a symlink points at.
func TestEnsureReowns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("volumes need root (CI runs the host tests as root)")
	}
	m := &Manager{Dir: filepath.Join(t.TempDir(), "volumes")}
	t.Cleanup(func() {
		if err := m.UnmountAll(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	mnt, err := m.Ensure("pg-data", 16, 1000, 1000)
	if err != nil {
		t.Fatal(err)
	}
	hostFile := filepath.Join(t.TempDir(), "host-secret")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(hostFile, []byte("x"), 0o600))
	must(os.MkdirAll(filepath.Join(mnt, "base", "1"), 0o700))
	must(os.WriteFile(filepath.Join(mnt, "base", "1", "rel"), []byte("data"), 0o600))
	must(os.WriteFile(filepath.Join(mnt, "rootfile"), nil, 0o644))
	must(os.WriteFile(filepath.Join(mnt, "otherfile"), nil, 0o644))
	must(os.Symlink(hostFile, filepath.Join(mnt, "link")))
	for _, p := range []string{"base", "base/1", "base/1/rel", "link"} {
		must(os.Lchown(filepath.Join(mnt, p), 1000, 1000))
	}
	must(os.Lchown(filepath.Join(mnt, "otherfile"), 4242, 1000))

	const uid, gid = 300001, 300002
	again, err := m.Ensure("pg-data", 16, uid, gid)
	must(err)
	if again != mnt {
		t.Fatalf("Ensure moved the mount: %s", again)
	}
	for p, want := range map[string][2]int{
		"": {uid, gid}, "base": {uid, gid}, "base/1": {uid, gid}, "base/1/rel": {uid, gid}, "link": {uid, gid},
		"rootfile": {0, 0}, "otherfile": {4242, gid},
	} {
		if got := owner(t, filepath.Join(mnt, p)); got != want {
			t.Errorf("%q owned by %v, want %v", p, got, want)
		}
	}
	if got := owner(t, hostFile); got != [2]int{0, 0} {
		t.Errorf("the host file a symlink points at was given away: %v", got)
	}
	if fi, err := os.Stat(filepath.Join(mnt, "base", "1", "rel")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("modes must survive: %v %v", fi.Mode(), err)
	}

	// Once: with the root already the job's, Ensure walks nothing.
	must(os.Lchown(filepath.Join(mnt, "base", "1", "rel"), 1000, 1000))
	_, err = m.Ensure("pg-data", 16, uid, gid)
	must(err)
	if got := owner(t, filepath.Join(mnt, "base", "1", "rel")); got != [2]int{1000, 1000} {
		t.Errorf("a second Ensure walked the tree again: %v", got)
	}
	// And a new volume belongs to its uid from the start.
	fresh, err := m.Ensure("fresh", 16, uid, gid)
	must(err)
	if got := owner(t, fresh); got != [2]int{uid, gid} {
		t.Errorf("new volume owned by %v", got)
	}
}
