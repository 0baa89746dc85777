package runtime

import (
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// stackUsers writes the job's /etc/passwd and /etc/group into its etc
// dir (on its tmpfs) and returns their bind mounts. The skeleton the
// stack's jobs share cannot hold them, since each app's jobs run under
// a uid of their own. Jobs with an image keep the image's files.
func stackUsers(s Spec, etc string) ([]specs.Mount, error) {
	if len(s.RootFS) > 0 {
		return nil, nil
	}
	passwd, group := s.etcUsers()
	if err := writeFiles(etc, map[string]string{"passwd": passwd, "group": group}); err != nil {
		return nil, err
	}
	return []specs.Mount{
		bind(filepath.Join(etc, "passwd"), "/etc/passwd", true),
		bind(filepath.Join(etc, "group"), "/etc/group", true),
	}, nil
}
