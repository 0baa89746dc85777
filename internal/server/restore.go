package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/pierpaas/pier/backup"
	"github.com/pierpaas/pier/blobstore"
	"github.com/pierpaas/pier/internal/pki"
	"github.com/pierpaas/pier/store"
)

// A restore happens in two steps. StageRestore checks the whole backup
// and, only then, fills a fresh data directory: the CA (so that CLI
// configs, API keys and the certificates it signed stay valid), the
// first API key's file, the blobs, and the etcd snapshot with what the
// restore must do, under restore/. The next Start on that directory
// loads the snapshot's keys into its new etcd member, after the member
// serves and before anything else writes, and forgets restore/ once
// they are in. The member is a new one (its own identity, this
// machine's addresses): the snapshot's keys are loaded through the
// client, not as etcd's data files, which is also how the old
// machines' state is left out on the way.

// restoreFile names the pending restore in a data directory.
func restoreDir(dataDir string) string  { return filepath.Join(dataDir, "restore") }
func restoreFile(dataDir string) string { return filepath.Join(restoreDir(dataDir), "restore.json") }
func restoreSnap(dataDir string) string { return filepath.Join(restoreDir(dataDir), "snapshot.db") }

// pendingRestore is restore/restore.json.
type pendingRestore struct {
	Manifest  backup.Manifest `json:"manifest"`
	NewDomain string          `json:"new_domain,omitempty"`
}

// ErrNotFresh: a restore only goes into an empty data directory.
var ErrNotFresh = errors.New("server: the data directory is not empty")

// StageRestore verifies the backup at file and prepares dataDir (which
// must not exist, or be empty) to start as the restored cluster's
// first server, with routes moved to newDomain unless it is empty. If
// the file is damaged, nothing is written; if writing fails half-way,
// what was written is removed.
func StageRestore(ctx context.Context, file, dataDir, newDomain string, log *slog.Logger) (_ *backup.Manifest, err error) {
	if log == nil {
		log = slog.Default()
	}
	existed, err := checkFresh(dataDir)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m, err := backup.Verify(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w (nothing was changed)", file, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	defer func() {
		if err == nil {
			return
		}
		if existed {
			entries, _ := os.ReadDir(dataDir)
			for _, e := range entries {
				os.RemoveAll(filepath.Join(dataDir, e.Name()))
			}
		} else {
			os.RemoveAll(dataDir)
		}
	}()
	if err := os.MkdirAll(restoreDir(dataDir), 0o700); err != nil {
		return nil, err
	}
	os.Chmod(dataDir, 0o700)
	blobs, err := blobstore.New(filepath.Join(dataDir, "blobs"))
	if err != nil {
		return nil, err
	}
	err = backup.Extract(f, m, func(e backup.Entry, body io.Reader) error {
		switch e.Name {
		case backup.SnapshotEntry:
			return writeFrom(restoreSnap(dataDir), body)
		case backup.CACertEntry:
			return writeFrom(filepath.Join(PKIDir(dataDir), pki.CACertFile), body)
		case backup.CAKeyEntry:
			return writeFrom(filepath.Join(PKIDir(dataDir), pki.CAKeyFile), body)
		case backup.AdminKeyEntry:
			return writeFrom(filepath.Join(dataDir, "admin.key"), body)
		}
		if d := backup.BlobDigest(e.Name); d != "" {
			_, err := blobs.Put(ctx, body, d)
			return err
		}
		return fmt.Errorf("server: no place for %s", e.Name) // Verify knows no other names
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if !m.Has(backup.CACertEntry) || !m.Has(backup.CAKeyEntry) {
		return nil, fmt.Errorf("%s: the backup holds no cluster CA", file)
	}
	b, err := json.MarshalIndent(pendingRestore{Manifest: *m, NewDomain: newDomain}, "", "  ")
	if err != nil {
		return nil, err
	}
	// Last: a directory without it holds no restore to make.
	if err := pki.WriteFile(restoreFile(dataDir), b); err != nil {
		return nil, err
	}
	n, size := m.Blobs()
	log.Info("backup verified and staged", "file", file, "created", m.CreatedAt, "from", m.Server, "blobs", n, "blob_bytes", size, "data", dataDir)
	return m, nil
}

// AppDomain is the domain of an app URL format ("http://{app}.example.com"
// is "example.com"), or "" when it has none.
func AppDomain(appURL string) string {
	const probe = "x"
	u, err := url.Parse(strings.ReplaceAll(appURL, "{app}", probe))
	if err != nil {
		return ""
	}
	d, ok := strings.CutPrefix(u.Hostname(), probe+".")
	if !ok {
		return ""
	}
	return d
}

// checkFresh refuses a data directory that holds anything: a restore
// never overwrites a cluster. It says whether the directory exists.
func checkFresh(dataDir string) (bool, error) {
	entries, err := os.ReadDir(dataDir)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if len(entries) > 0 {
		return true, fmt.Errorf("%w: %s holds %s; restore into a new one", ErrNotFresh, dataDir, entries[0].Name())
	}
	return true, nil
}

// writeFrom writes r to path (0600), whole or not at all.
func writeFrom(path string, r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	return pki.WriteFile(path, b)
}

// applyRestore loads a staged restore's keys into the store, if the
// data directory holds one. It runs before the controller starts: the
// controller would otherwise make a first API key, and the loops would
// act on an empty store.
func (s *Server) applyRestore(ctx context.Context) error {
	b, err := os.ReadFile(restoreFile(s.cfg.DataDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var p pendingRestore
	if err := json.Unmarshal(b, &p); err != nil {
		return fmt.Errorf("server: %s: %w", restoreFile(s.cfg.DataDir), err)
	}
	kvs, err := store.ReadSnapshot(restoreSnap(s.cfg.DataDir))
	if err != nil {
		return err
	}
	clean, sum, err := backup.Clean(kvs, backup.Options{
		OldDomain: p.Manifest.Domain, NewDomain: p.NewDomain, BlobURL: "https://" + s.cfg.APIAddr(),
	})
	if err != nil {
		return err
	}
	if err := backup.Load(ctx, s.Client, clean); err != nil {
		return err
	}
	s.cfg.Log.Info("cluster restored", "backup_of", p.Manifest.CreatedAt, "from", p.Manifest.Server,
		"keys", sum.Kept, "left_out", sum.Dropped, "routes_moved", sum.RoutesMoved,
		"artifacts_moved", sum.ArtifactsMoved, "volumes_unbound", sum.VolumesUnbound,
		"old_domain", p.Manifest.Domain, "new_domain", p.NewDomain)
	return os.RemoveAll(restoreDir(s.cfg.DataDir))
}
