package volume

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// reown gives the volume mounted at mnt to uid:gid if its root belongs to
// someone else: a volume made when its app's jobs ran as another uid (all
// apps shared uid 1000 before each got its own, see api.AppUID) would
// otherwise lock its own job out of its data. Every entry owned by the
// root's old uid gets the new uid, every entry of its old gid the new
// gid; entries of other owners are left as they are. The root goes last,
// so a pass cut short (a crash, a full inode table) is done again in full
// by the next Ensure, and once it is done no later Ensure walks the tree.
// It returns how many entries it changed, the root included.
func reown(mnt string, uid, gid int) (int, error) {
	var root syscall.Stat_t
	if err := syscall.Lstat(mnt, &root); err != nil {
		return 0, err
	}
	oldUID, oldGID := int(root.Uid), int(root.Gid)
	if oldUID == uid && oldGID == gid {
		return 0, nil
	}
	n := 0
	err := filepath.WalkDir(mnt, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == mnt {
			return nil
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return err
		}
		if st.Dev != root.Dev {
			// Nothing is mounted inside a volume on the host; if it ever
			// is, it is not the volume's to give away.
			return fs.SkipDir
		}
		u, g := int(st.Uid), int(st.Gid)
		if u != oldUID && g != oldGID {
			return nil
		}
		if u == oldUID {
			u = uid
		}
		if g == oldGID {
			g = gid
		}
		// Lchown: a symlink is changed itself, never what it points to.
		if err := os.Lchown(p, u, g); err != nil {
			return err
		}
		n++
		return nil
	})
	if err != nil {
		return n, fmt.Errorf("give %s from %d:%d to %d:%d: %w", mnt, oldUID, oldGID, uid, gid, err)
	}
	if err := os.Lchown(mnt, uid, gid); err != nil {
		return n, err
	}
	return n + 1, nil
}
