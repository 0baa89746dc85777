package artifact

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestFetchAsOwners: each owner gets a copy of its own, owned by it
// throughout; the default owner's copy keeps the bare digest as its
// name; GC keeps or drops each copy by its name.
func TestFetchAsOwners(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("giving files away needs root (CI runs the host tests as root)")
	}
	data, digest := goodSlugData(t)
	p := filepath.Join(t.TempDir(), "slug.tgz")
	must(t, os.WriteFile(p, data, 0o644))
	def := &Owner{UID: 1000, GID: 1000}
	c := &Cache{Dir: t.TempDir(), Limits: Limits{Owner: def}}
	a, b := &Owner{UID: 200001, GID: 200001}, &Owner{UID: 200002, GID: 200003}
	dirs := map[string]*Owner{}
	for _, o := range []*Owner{nil, def, a, b, a} {
		dir, err := c.FetchAs(context.Background(), "file://"+p, digest, o)
		must(t, err)
		want := c.EntryName(digest, o)
		if dir != filepath.Join(c.Dir, want) {
			t.Errorf("FetchAs(%v) = %s, want %s", o, dir, want)
		}
		if o == nil {
			o = def
		}
		dirs[dir] = o
	}
	if len(dirs) != 3 {
		t.Fatalf("%d copies, want 3 (default, a, b): %v", len(dirs), dirs)
	}
	if c.EntryName(digest, nil) != digest || c.EntryName(digest, def) != digest {
		t.Errorf("the default owner's entry is not the bare digest")
	}
	if got := c.EntryName(digest, a); got != digest+"-200001-200001" {
		t.Errorf("EntryName(a) = %s", got)
	}
	for dir, o := range dirs {
		n := 0
		must(t, filepath.Walk(dir, func(path string, fi os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			n++
			if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != o.UID || int(st.Gid) != o.GID {
				t.Errorf("%s is %d:%d, want %d:%d", path, st.Uid, st.Gid, o.UID, o.GID)
			}
			return nil
		}))
		if n < 3 {
			t.Errorf("%s holds %d entries", dir, n)
		}
	}
	keep := c.EntryName(digest, b)
	removed, err := c.GC(func(name string) bool { return name == keep })
	must(t, err)
	if len(removed) != 2 {
		t.Errorf("GC removed %v, want the default's and a's copies", removed)
	}
	if names := cacheNames(t, c); strings.Join(names, ",") != keep {
		t.Errorf("after GC the cache holds %v, want only %s", names, keep)
	}
	must(t, c.Remove(keep))
	if names := cacheNames(t, c); len(names) != 0 {
		t.Errorf("after Remove the cache holds %v", names)
	}
}

func TestParseEntryName(t *testing.T) {
	d := strings.Repeat("ab", 32)
	for name, want := range map[string]bool{
		d: true, d + "-1-2": true, d + "-123456-123456": true,
		d + "-": false, d + "-1": false, d + "-1-": false, d + "-01-2": false, d + "-1-2-3": false,
		d + "x": false, d[:63]: false, ".x": false, d + "-a-b": false, d + "-1--2": false,
		d + "-12345678901-1": false,
	} {
		got, ok := ParseEntryName(name)
		if ok != want || ok && got != d {
			t.Errorf("ParseEntryName(%q) = %q, %v; want ok=%v", name, got, ok, want)
		}
	}
}
