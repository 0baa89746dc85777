package volume

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// newManager is a manager under a test directory that leaves no mount
// or loop device behind, pass or fail.
func newManager(t *testing.T) *Manager {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("volumes need root")
	}
	m := &Manager{Dir: filepath.Join(t.TempDir(), "volumes")}
	t.Cleanup(func() {
		if err := m.UnmountAll(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return m
}

func TestVolumeLifecycle(t *testing.T) {
	m := newManager(t)
	mnt, err := m.Ensure("data-1", 16, 1000, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(mnt, &st); err != nil || st.Uid != 1000 || st.Gid != 1000 {
		t.Fatalf("root owned by %d:%d (%v), want 1000:1000", st.Uid, st.Gid, err)
	}
	if ents, _ := os.ReadDir(mnt); len(ents) != 0 {
		t.Errorf("new volume holds %v", ents)
	}
	if err := os.WriteFile(filepath.Join(mnt, "keep"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}

	// Past the cap: ENOSPC, and the image stays its size on the host.
	f, err := os.Create(filepath.Join(mnt, "fill"))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	for i := 0; ; i++ {
		if _, err = f.Write(buf); err != nil {
			break
		}
		if i > 64 {
			t.Fatal("wrote 64 MB into a 16 MB volume")
		}
	}
	f.Close()
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("writing past the cap: %v, want ENOSPC", err)
	}
	if fi, err := os.Stat(m.ImagePath("data-1")); err != nil || fi.Size() != 16<<20 {
		t.Fatalf("image %v %v", fi.Size(), err)
	}
	os.Remove(filepath.Join(mnt, "fill"))

	// Unmounted (a reboot), the mount point is closed, and mounting again
	// brings the data back; Ensure of a made volume keeps it.
	if err := m.UnmountAll(); err != nil {
		t.Fatal(err)
	}
	if ok, _ := Mounted(mnt); ok {
		t.Fatal("still mounted")
	}
	if fi, err := os.Stat(mnt); err != nil || fi.Mode().Perm() != 0 {
		t.Errorf("unmounted mount point %v %v, want mode 0", fi.Mode(), err)
	}
	if err := m.MountAll(); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Ensure("data-1", 32, 1000, 1000); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(mnt, "keep")); err != nil || !bytes.Equal(b, []byte("hello")) {
		t.Fatalf("after remount: %q %v", b, err)
	}
	if ids, _ := m.List(); len(ids) != 1 || ids[0] != "data-1" {
		t.Errorf("List = %v", ids)
	}

	if err := m.Remove("data-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(m.ImagePath("data-1")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("image left: %v", err)
	}
	if err := m.Remove("data-1"); err != nil {
		t.Errorf("second remove: %v", err)
	}
	if err := (&Manager{Dir: filepath.Join(t.TempDir(), "none")}).Remove("data-1"); err != nil {
		t.Errorf("remove on a host that never had volumes: %v", err)
	}
	if _, err := m.Ensure("../x", 1, 0, 0); !errors.Is(err, ErrBadID) {
		t.Errorf("bad id: %v", err)
	}
}
