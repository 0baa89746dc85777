package backup

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// A directory of scheduled backups holds one file a backup, named
// pier-backup-<schedule>-<UTC time>.tar, so that its files sort by age
// and a schedule's are told from another's and from anything else the
// directory holds, which is never touched. A file appears under its
// name only once written, synced and verified; until then it is a
// hidden .part file.

const fileTimeLayout = "20060102T150405Z"

// FileName is the name of schedule's backup made at t.
func FileName(schedule string, t time.Time) string {
	return "pier-backup-" + schedule + "-" + t.UTC().Format(fileTimeLayout) + ".tar"
}

// DirFile is a schedule's backup found in a directory.
type DirFile struct {
	Path      string
	Size      int64
	CreatedAt time.Time // from its name
}

// ListDir returns schedule's backups in dir, newest first.
func ListDir(dir, schedule string) ([]DirFile, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	prefix := "pier-backup-" + schedule + "-"
	var out []DirFile
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok || !e.Type().IsRegular() {
			continue
		}
		t, err := time.Parse(fileTimeLayout, strings.TrimSuffix(rest, ".tar"))
		if err != nil || !strings.HasSuffix(rest, ".tar") {
			continue // another schedule's whose name starts with this one's
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		out = append(out, DirFile{Path: filepath.Join(dir, e.Name()), Size: fi.Size(), CreatedAt: t})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.After(out[j].CreatedAt) })
	return out, nil
}

// PruneDir removes all but the keep newest of schedule's backups in dir,
// and .part files of its runs that stopped writing an hour ago or more,
// and returns the files kept, newest first.
func PruneDir(dir, schedule string, keep int, now time.Time) ([]DirFile, error) {
	files, err := ListDir(dir, schedule)
	if err != nil {
		return nil, err
	}
	if keep < 1 {
		keep = 1
	}
	var errs []string
	for len(files) > keep {
		old := files[len(files)-1]
		if err := os.Remove(old.Path); err != nil && !os.IsNotExist(err) {
			errs = append(errs, err.Error())
		}
		files = files[:len(files)-1]
	}
	parts, _ := filepath.Glob(filepath.Join(dir, ".pier-backup-"+schedule+"-*.part"))
	for _, p := range parts {
		if fi, err := os.Stat(p); err == nil && now.Sub(fi.ModTime()) >= time.Hour {
			os.Remove(p)
		}
	}
	if len(errs) > 0 {
		return files, fmt.Errorf("backup: prune %s: %s", dir, strings.Join(errs, "; "))
	}
	return files, nil
}

// WriteDir writes schedule's backup made at t into dir (made, mode 0700,
// if missing): write writes the stream; the file is synced, read back
// through Verify, and only then renamed to its name. It returns the
// file's path and size; on any failure nothing is left under that name.
func WriteDir(dir, schedule string, t time.Time, write func(io.Writer) error) (string, int64, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", 0, err
	}
	name := FileName(schedule, t)
	f, err := os.CreateTemp(dir, "."+strings.TrimSuffix(name, ".tar")+"-*.part")
	if err != nil {
		return "", 0, err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	size, err := writeVerified(f, write)
	if err != nil {
		return "", 0, err
	}
	if err := f.Close(); err != nil {
		return "", 0, err
	}
	path := filepath.Join(dir, name)
	if err := os.Rename(tmp, path); err != nil {
		return "", 0, err
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return path, size, nil
}

// writeVerified writes the stream write writes to f, syncs it, reads it
// back through Verify and leaves f at its start. It returns the size.
func writeVerified(f *os.File, write func(io.Writer) error) (int64, error) {
	if err := write(f); err != nil {
		return 0, err
	}
	if err := f.Sync(); err != nil {
		return 0, err
	}
	size, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return 0, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, err
	}
	if _, err := Verify(f); err != nil {
		return 0, fmt.Errorf("backup: %s does not read back: %w", f.Name(), err)
	}
	_, err = f.Seek(0, io.SeekStart)
	return size, err
}
