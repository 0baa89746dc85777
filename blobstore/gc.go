package blobstore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
)

// GC removes every blob for which keep returns false, and temp files left
// behind by uploads that crashed or were abandoned. The controller passes a
// keep that answers "referenced by a kept release"; the store has no idea
// what a release is.
//
// A blob younger than the grace period (see WithGCGrace) is kept whatever
// keep says, because its release may be created by a request that has not
// arrived yet. GC goes on past a blob it cannot remove and returns the first
// such error together with what it did remove.
func (s *Store) GC(keep func(digest string) bool) (removed []string, err error) {
	now := s.now()
	var firstErr error
	note := func(e error) {
		if firstErr == nil && e != nil {
			firstErr = e
		}
	}

	var candidates []string
	note(s.walk(func(digest string, fi fs.FileInfo) error {
		if now.Sub(fi.ModTime()) >= s.grace && !keep(digest) {
			candidates = append(candidates, digest)
		}
		return nil
	}))
	sort.Strings(candidates)
	for _, d := range candidates {
		ok, err := s.removeIfOld(d)
		note(err)
		if ok {
			removed = append(removed, d)
		}
	}

	note(s.cleanTemp())
	return removed, firstErr
}

// removeIfOld deletes a GC candidate unless a Put re-uploaded it since the
// walk (refreshing its age). Checking and removing under the commit lock
// makes "Put returned success" and "GC removed it" mutually exclusive.
func (s *Store) removeIfOld(digest string) (bool, error) {
	p := s.path(digest)
	s.mu.Lock()
	defer s.mu.Unlock()
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("blobstore: %w", err)
	}
	if s.now().Sub(fi.ModTime()) < s.grace {
		return false, nil
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("blobstore: %w", err)
	}
	return true, nil
}

// cleanTemp removes temp files older than staleTempAge. Younger ones may be
// uploads in progress in this or another process sharing the directory.
func (s *Store) cleanTemp() error {
	entries, err := os.ReadDir(s.tmpDir())
	if err != nil {
		return fmt.Errorf("blobstore: %w", err)
	}
	now := s.now()
	var firstErr error
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil || now.Sub(fi.ModTime()) < staleTempAge {
			continue
		}
		if err := os.RemoveAll(filepath.Join(s.tmpDir(), e.Name())); err != nil && firstErr == nil {
			firstErr = fmt.Errorf("blobstore: %w", err)
		}
	}
	return firstErr
}
