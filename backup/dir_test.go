package backup

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestWriteListPruneDir(t *testing.T) {
	good, _ := sample(t)
	dir := filepath.Join(t.TempDir(), "made")
	t0 := time.Date(2026, 5, 1, 2, 0, 0, 0, time.UTC)
	write := func(b []byte) func(io.Writer) error {
		return func(w io.Writer) error { _, err := w.Write(b); return err }
	}
	for i := range 4 {
		path, size, err := WriteDir(dir, "nightly", t0.Add(time.Duration(i)*24*time.Hour), write(good))
		if err != nil || size != int64(len(good)) || filepath.Base(path) != FileName("nightly", t0.Add(time.Duration(i)*24*time.Hour)) {
			t.Fatalf("write %d: %s %d %v", i, path, size, err)
		}
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("dir: %v %v", fi.Mode(), err)
	}
	// A damaged stream, or a failing writer, leaves no file behind.
	damaged := append([]byte(nil), good...)
	damaged[len(damaged)/2] ^= 1
	if _, _, err := WriteDir(dir, "nightly", t0.Add(-time.Hour), write(damaged)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("damaged: %v", err)
	}
	if _, _, err := WriteDir(dir, "nightly", t0.Add(-2*time.Hour), func(io.Writer) error { return errors.New("server gone") }); err == nil {
		t.Fatal("a failed write succeeded")
	}
	// Another schedule whose name starts the same, an old .part of a
	// run that died, and a file of the operator's.
	other := filepath.Join(dir, FileName("nightly-eu", t0))
	stale := filepath.Join(dir, ".pier-backup-nightly-x.part")
	fresh := filepath.Join(dir, ".pier-backup-nightly-y.part")
	mine := filepath.Join(dir, "README")
	for _, p := range []string{other, stale, fresh, mine} {
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	now := t0.Add(10 * 24 * time.Hour)
	os.Chtimes(stale, now.Add(-2*time.Hour), now.Add(-2*time.Hour))
	os.Chtimes(fresh, now.Add(-time.Minute), now.Add(-time.Minute))

	files, err := ListDir(dir, "nightly")
	if err != nil || len(files) != 4 || !files[0].CreatedAt.Equal(t0.Add(72*time.Hour)) || !files[3].CreatedAt.Equal(t0) {
		t.Fatalf("list: %+v %v", files, err)
	}
	kept, err := PruneDir(dir, "nightly", 2, now)
	if err != nil || len(kept) != 2 || !kept[0].CreatedAt.Equal(t0.Add(72*time.Hour)) || !kept[1].CreatedAt.Equal(t0.Add(48*time.Hour)) {
		t.Fatalf("prune: %+v %v", kept, err)
	}
	ents, _ := os.ReadDir(dir)
	want := map[string]bool{kept[0].Path: true, kept[1].Path: true, other: true, mine: true, fresh: true}
	if len(ents) != len(want) {
		t.Fatalf("left %v, want %v", ents, want)
	}
	for _, e := range ents {
		if !want[filepath.Join(dir, e.Name())] {
			t.Fatalf("%s left behind", e.Name())
		}
	}
}
