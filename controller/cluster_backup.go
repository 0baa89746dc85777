package controller

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/backup"
	"github.com/pierpaas/pier/blobstore"
	"github.com/pierpaas/pier/internal/pki"
	"github.com/pierpaas/pier/store"
)

// GET /v1/cluster/backup: the whole cluster as one backup stream (see
// package backup) while it serves.
func (c *Controller) clusterBackup(w http.ResponseWriter, r *http.Request) error {
	src, err := c.prepareClusterBackup(r.Context())
	if err != nil {
		return err
	}
	defer src.Close()
	// From here on the answer has started: a failure can only cut the
	// stream, which the client sees as a truncated file (and refuses).
	w.Header().Set("Content-Type", "application/x-tar")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="pier-backup-%s.tar"`, time.Now().UTC().Format("20060102-150405")))
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	if _, err := src.Write(w); err != nil {
		c.Log.Error("backup cut short", "err", err)
		panic(http.ErrAbortHandler) // no end to the stream: the client knows
	}
	return nil
}

// clusterBackupSource is a backup ready to be written: the etcd
// snapshot spooled to a temporary file (its size must be known before
// its tar header), the blobs it needs, decided from the snapshot itself
// so the file is consistent (every release it holds finds its artifact)
// even when releases come and go meanwhile, and the small files. Blobs
// stream from the blobstore when written; only the manifest is held in
// memory.
type clusterBackupSource struct {
	c           *Controller
	snap        *os.File
	size        int64
	etcdVersion string
	digests     []string
	parts       []backupPart
}

// prepareClusterBackup takes the snapshot and decides what goes into
// the backup. Close the result.
func (c *Controller) prepareClusterBackup(ctx context.Context) (_ *clusterBackupSource, err error) {
	if c.Blobs == nil || c.CADir == "" {
		return nil, api.Errorf(api.ErrCodeUnavailable, "this server keeps no blobs or no CA: back up from a server")
	}
	snap, err := os.CreateTemp("", "pier-backup-*.db")
	if err != nil {
		return nil, err
	}
	src := &clusterBackupSource{c: c, snap: snap}
	defer func() {
		if err != nil {
			src.Close()
		}
	}()
	if src.etcdVersion, src.size, err = store.Snapshot(ctx, c.Client, snap); err != nil {
		return nil, err
	}
	if src.digests, err = c.snapshotBlobs(ctx, snap.Name()); err != nil {
		return nil, err
	}
	src.parts, err = readBackupParts([]backupPart{
		{name: backup.CACertEntry, path: filepath.Join(c.CADir, pki.CACertFile), required: true},
		{name: backup.CAKeyEntry, path: filepath.Join(c.CADir, pki.CAKeyFile), required: true},
		{name: backup.AdminKeyEntry, path: c.AdminKeyFile},
	})
	if err != nil {
		return nil, err
	}
	return src, nil
}

// Write writes the backup to w; it can be written once.
func (s *clusterBackupSource) Write(w io.Writer) (backup.Manifest, error) {
	c := s.c
	if _, err := s.snap.Seek(0, io.SeekStart); err != nil {
		return backup.Manifest{}, err
	}
	bw, err := backup.NewWriter(w, backup.Manifest{
		PierVersion: pierVersion(), EtcdVersion: s.etcdVersion, Server: c.ServerName, Domain: c.clusterDomain(),
		CreatedAt: c.now().UTC(),
	})
	if err == nil {
		err = bw.Add(backup.SnapshotEntry, s.size, s.snap)
	}
	for _, p := range s.parts {
		if err == nil {
			err = bw.Add(p.name, int64(len(p.data)), bytes.NewReader(p.data))
		}
	}
	for _, d := range s.digests {
		if err != nil {
			break
		}
		err = c.addBlob(bw, d)
	}
	if err == nil {
		err = bw.Close()
	}
	if err != nil {
		return backup.Manifest{}, err
	}
	m := bw.Manifest()
	n, blobBytes := m.Blobs()
	c.Log.Info("backup written", "blobs", n, "blob_bytes", blobBytes, "snapshot_bytes", s.size)
	return m, nil
}

// Close removes the spooled snapshot.
func (s *clusterBackupSource) Close() error {
	s.snap.Close()
	return os.Remove(s.snap.Name())
}

// snapshotBlobs are the blobs the snapshot's kept releases and builds
// and its resources' database backups need, sorted, each made present on this server (copied from another
// server if replication has not brought it yet).
func (c *Controller) snapshotBlobs(ctx context.Context, path string) ([]string, error) {
	kvs, err := store.ReadSnapshot(path)
	if err != nil {
		return nil, err
	}
	rels, err1 := backupItems[api.Release](kvs, store.ReleasesPrefix)
	apps, err2 := backupItems[api.App](kvs, store.AppsPrefix)
	deps, err3 := backupItems[api.Deployment](kvs, store.DeploymentsPrefix)
	builds, err4 := backupItems[api.Build](kvs, store.BuildsPrefix)
	dumps, err5 := backupItems[api.Backup](kvs, store.ResourceBackups)
	if err := errors.Join(err1, err2, err3, err4, err5); err != nil {
		return nil, err
	}
	kept := keptDigests(rels, apps, deps, builds, c.KeepReleases)
	for _, b := range dumps {
		kept[b.Value.SHA256] = true // a database backup's dump
	}
	var out []string
	for d := range kept {
		if !blobstore.ValidDigest(d) {
			continue // a build without a cache
		}
		if _, err := c.Blobs.Stat(d); err != nil {
			if c.Replica == nil {
				return nil, fmt.Errorf("blob %s is not on this server: %w", d, err)
			}
			if err := c.Replica.Fetch(ctx, d); err != nil {
				return nil, fmt.Errorf("blob %s is on no server: %w", d, err)
			}
		}
		out = append(out, d)
	}
	sort.Strings(out)
	return out, nil
}

func (c *Controller) addBlob(bw *backup.Writer, digest string) error {
	f, b, err := c.Blobs.Open(digest)
	if err != nil {
		return err
	}
	defer f.Close()
	return bw.AddBlob(digest, b.Size, f)
}

// backupItems decodes a snapshot's values under prefix.
func backupItems[T any](kvs []store.SnapshotKV, prefix string) ([]store.Item[T], error) {
	var out []store.Item[T]
	for _, kv := range kvs {
		if !strings.HasPrefix(kv.Key, prefix) {
			continue
		}
		var v T
		if err := json.Unmarshal(kv.Value, &v); err != nil {
			return nil, fmt.Errorf("backup: %s: %w", kv.Key, err)
		}
		out = append(out, store.Item[T]{Key: kv.Key, Value: v, ModRevision: kv.ModRevision})
	}
	return out, nil
}

// backupPart is a small file that goes into a backup whole.
type backupPart struct {
	name, path string
	required   bool
	data       []byte
}

// readBackupParts reads the parts' files, leaving out an optional one that
// does not exist.
func readBackupParts(parts []backupPart) ([]backupPart, error) {
	var out []backupPart
	for _, p := range parts {
		if p.path == "" && !p.required {
			continue
		}
		b, err := os.ReadFile(p.path)
		if errors.Is(err, os.ErrNotExist) && !p.required {
			continue
		}
		if err != nil {
			return nil, err
		}
		p.data = b
		out = append(out, p)
	}
	return out, nil
}

// pierVersion is the binary's version as the Go toolchain recorded it:
// the module version, and the commit when built from a checkout.
func pierVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" {
			v += " " + s.Value
		}
	}
	return v
}
