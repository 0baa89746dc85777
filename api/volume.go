package api

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"strings"
	"time"
)

// VolumeSpec is a volume a process type (or a job) declares: a
// file system of its own, with a hard size cap, mounted read-write at
// Path and kept across the job's restarts, the agent's restarts and the
// host's reboots. The jobs of one (app, process type) share each of its
// volumes, so they all run on the host that holds it.
type VolumeSpec struct {
	// Name is a DNS label, unique within the process type ("data").
	Name string `json:"name"`
	// Path is where the job sees it: absolute, clean, not under a system
	// directory.
	Path string `json:"path"`
	// SizeMB is the hard cap: writing past it fails with ENOSPC. A
	// volume keeps the size it was made with; a later release that asks
	// for another size does not resize it.
	SizeMB int64 `json:"size_mb"`
}

// MaxVolumeMB is the largest volume one may ask for (4 TiB). The image
// is sparse, so this bounds a typo rather than the disk.
const MaxVolumeMB = 4 << 20

// reservedPaths are the container's own directories: a volume there
// would hide what the runtime mounts (or the pier binary).
var reservedPaths = []string{"/", "/proc", "/sys", "/dev", "/.pier", "/etc", "/usr", "/bin", "/sbin", "/lib", "/lib64", "/app", "/tmp"}

// Validate checks a volume declaration.
func (v *VolumeSpec) Validate() error {
	switch {
	case !ValidID(v.Name):
		return fmt.Errorf("volume name %q must be a DNS label (lower-case letters, digits and dashes, at most 63)", v.Name)
	case len(v.Name) > maxVolumeName:
		return fmt.Errorf("volume name %q is longer than %d characters", v.Name, maxVolumeName)
	case v.Path == "" || !path.IsAbs(v.Path):
		return fmt.Errorf("volume %s: mount path %q must be absolute", v.Name, v.Path)
	case path.Clean(v.Path) != v.Path:
		return fmt.Errorf("volume %s: mount path %q is not clean (want %q)", v.Name, v.Path, path.Clean(v.Path))
	case strings.ContainsAny(v.Path, ",:\x00\n"):
		return fmt.Errorf("volume %s: mount path %q holds a character mounts cannot take", v.Name, v.Path)
	case v.SizeMB <= 0:
		return fmt.Errorf("volume %s: size must be positive (size_mb %d)", v.Name, v.SizeMB)
	case v.SizeMB > MaxVolumeMB:
		return fmt.Errorf("volume %s: size %d MB is over the maximum of %d MB", v.Name, v.SizeMB, MaxVolumeMB)
	}
	for _, r := range reservedPaths {
		if v.Path == r || (r != "/" && strings.HasPrefix(v.Path, r+"/")) {
			return fmt.Errorf("volume %s: mount path %s is under the system directory %s", v.Name, v.Path, r)
		}
	}
	return nil
}

// validateVolumes checks a list of declarations, and that no two share
// a name or a path, or nest one in the other.
func validateVolumes(vs []VolumeSpec) error {
	names := map[string]bool{}
	for i := range vs {
		v := &vs[i]
		if err := v.Validate(); err != nil {
			return err
		}
		if names[v.Name] {
			return fmt.Errorf("volume %s is declared twice", v.Name)
		}
		names[v.Name] = true
		for _, w := range vs[:i] {
			if w.Path == v.Path || strings.HasPrefix(v.Path, w.Path+"/") || strings.HasPrefix(w.Path, v.Path+"/") {
				return fmt.Errorf("volumes %s and %s: mount paths %s and %s overlap", w.Name, v.Name, w.Path, v.Path)
			}
		}
	}
	return nil
}

// maxVolumeName leaves room in a volume id for the hash VolumeID adds.
const maxVolumeName = 40

// VolumeID is the id of the volume name of an app's process type: the
// name, for people, and a hash of all three, since app and process type
// names joined by dashes would be ambiguous ("a-b"+"c", "a"+"b-c") and
// could outgrow a DNS label. The same inputs always give the same id,
// which is how every release of the process type finds its data.
func VolumeID(app, processType, name string) string {
	sum := sha256.Sum256([]byte(app + "\x00" + processType + "\x00" + name))
	return name + "-" + hex.EncodeToString(sum[:5])
}

// JobVolume is a volume as a job carries it: the declaration, and the
// id of the volume record it is bound to.
type JobVolume struct {
	ID string `json:"id"`
	VolumeSpec
}

// Volume is the record of a volume, under /pier/volumes/<id>. The
// scheduler creates it when it first places a job that declares it,
// bound to that job's host in the same transaction (or binds a record
// made ahead of time, with Host empty, the same way), and never moves
// it. The controller writes only DeleteRequestedAt; the host agent then
// removes the volume's image and deletes the record.
type Volume struct {
	ID          string `json:"id"`
	App         string `json:"app"`
	ProcessType string `json:"process_type"`
	Name        string `json:"name"`
	// Host holds the volume; empty until the first job is placed.
	Host      string    `json:"host,omitempty"`
	SizeMB    int64     `json:"size_mb"`
	CreatedAt time.Time `json:"created_at"`
	// DeleteRequestedAt marks the volume for removal (pier
	// volumes:remove); its host removes the data, then the record.
	DeleteRequestedAt time.Time `json:"delete_requested_at,omitzero"`
}

// VolumeState is what a host agent reports of a volume.
type VolumeState string

const (
	VolumeReady    VolumeState = "ready"    // made and mounted on its host
	VolumeFailed   VolumeState = "failed"   // could not be made or mounted; see Error
	VolumeRemoving VolumeState = "removing" // being removed from its host
)

// VolumeStatus is a volume's observed state, written only by the agent of
// its host under /pier/volume-status/<id>.
type VolumeStatus struct {
	ID        string      `json:"id"`
	Host      string      `json:"host"`
	State     VolumeState `json:"state"`
	Error     string      `json:"error,omitempty"`
	UpdatedAt time.Time   `json:"updated_at"`
}

// VolumeInfo is a volume as GET /v1/volumes lists it: its record, its
// host's report of it, and the jobs that use it and have not ended.
type VolumeInfo struct {
	Volume
	Status *VolumeStatus `json:"status,omitempty"`
	// State sums the two up: "unbound", "ready", "failed", "removing",
	// "pending" (bound, not yet made), or "host gone".
	State string   `json:"state"`
	Jobs  []string `json:"jobs,omitempty"`
}
