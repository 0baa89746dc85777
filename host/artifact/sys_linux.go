//go:build linux

package artifact

import (
	"io/fs"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// syncFS flushes the whole file system holding dir with one syncfs(2)
// instead of an fsync per file: a slug has tens of thousands of files, and
// the standard syscall package lacks SYS_SYNCFS on amd64, hence x/sys.
func syncFS(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Syncfs(int(f.Fd()))
}

func syncDir(dir string) {
	if f, err := os.Open(dir); err == nil {
		f.Sync()
		f.Close()
	}
}

// diskUsage returns the bytes fi occupies on disk and, for files with more
// than one link, a key so that Usage counts shared blocks once.
func diskUsage(fi fs.FileInfo) (bytes int64, key [2]uint64, linked bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fi.Size(), key, false
	}
	return int64(st.Blocks) * 512, [2]uint64{uint64(st.Dev), st.Ino}, st.Nlink > 1
}
