package backup

import (
	"errors"
	"strings"
	"time"

	"github.com/pierpaas/pier/blobstore"
)

// Format is the version of the layout this package writes and reads.
const Format = 1

// Entry names. Each has a fixed shape: Verify refuses any other.
const (
	MarkerEntry      = "PIER-BACKUP"
	SnapshotEntry    = "etcd/snapshot.db"
	CACertEntry      = "pki/ca.crt"
	CAKeyEntry       = "pki/ca.key"
	AdminKeyEntry    = "admin.key"
	BlobEntryPrefix  = "blobs/sha256/"
	ManifestEntry    = "manifest.json"
	ManifestSumEntry = "manifest.json.sha256"
)

// marker is the first entry's content.
const marker = "pier cluster backup\n"

var (
	// ErrCorrupt: the file is damaged, truncated or not a backup.
	ErrCorrupt = errors.New("backup: the file is damaged or incomplete")
	// ErrUnsupported: a backup of a format this pier does not read.
	ErrUnsupported = errors.New("backup: unsupported format")
)

// Manifest describes a backup: what wrote it, from what, and every
// entry (the marker and the manifest itself aside) with its checksum.
type Manifest struct {
	Format      int       `json:"format"`
	PierVersion string    `json:"pier_version"`
	EtcdVersion string    `json:"etcd_version"`
	CreatedAt   time.Time `json:"created_at"`
	// Server is the server that wrote it; Domain the cluster domain its
	// apps answered under ("" when it had none), which a restore with a
	// new domain moves routes away from.
	Server  string  `json:"server"`
	Domain  string  `json:"domain,omitempty"`
	Entries []Entry `json:"entries"`
}

// Entry is one part of a backup.
type Entry struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Blobs counts the manifest's blobs and their bytes.
func (m *Manifest) Blobs() (n int, size int64) {
	for _, e := range m.Entries {
		if strings.HasPrefix(e.Name, BlobEntryPrefix) {
			n++
			size += e.Size
		}
	}
	return n, size
}

// Has says whether the manifest lists name.
func (m *Manifest) Has(name string) bool {
	for _, e := range m.Entries {
		if e.Name == name {
			return true
		}
	}
	return false
}

// BlobDigest is the digest of a blob entry's name, or "" when name is
// not one.
func BlobDigest(name string) string {
	d, ok := strings.CutPrefix(name, BlobEntryPrefix)
	if !ok || !blobstore.ValidDigest(d) {
		return ""
	}
	return d
}

// knownEntry says whether name may appear among a backup's parts.
func knownEntry(name string) bool {
	switch name {
	case SnapshotEntry, CACertEntry, CAKeyEntry, AdminKeyEntry:
		return true
	}
	return BlobDigest(name) != ""
}
