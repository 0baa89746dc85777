// Package volume keeps a host's volumes: each one a sparse image file
// formatted ext4 and loop-mounted under the agent's data directory, so
// its size cap is the file system's own (a full volume gives its writer
// ENOSPC and nothing else on the host notices) and its data outlives the
// jobs that mount it, the agent and reboots. Nothing here deletes a
// volume unless asked to by name.
package volume

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
)

// Errors.
var (
	ErrBadID       = errors.New("volume: bad id")
	ErrUnsupported = errors.New("volume: not supported on this system")
)

var idRE = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)

// Manager keeps the volumes under one directory: <id>.img is a volume's
// image, <id>/ its mount point.
type Manager struct {
	Dir string
	// Log, if set, hears of volumes given to a new owner.
	Log *slog.Logger
	mu  sync.Mutex // one change at a time: jobs sharing a volume start together
}

// ImagePath is where volume id's image lives.
func (m *Manager) ImagePath(id string) string { return filepath.Join(m.Dir, id+".img") }

// MountPath is where volume id is mounted on the host; jobs get a bind
// mount of it.
func (m *Manager) MountPath(id string) string { return filepath.Join(m.Dir, id) }

func checkID(id string) error {
	if len(id) > 63 || !idRE.MatchString(id) {
		return fmt.Errorf("%w: %q", ErrBadID, id)
	}
	return nil
}

// List returns the ids of the volumes whose images are here, made or
// being made.
func (m *Manager) List() ([]string, error) {
	ents, err := os.ReadDir(m.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, e := range ents {
		if id, ok := strings.CutSuffix(e.Name(), ".img"); ok && checkID(id) == nil {
			ids = append(ids, id)
		}
	}
	return ids, nil
}
