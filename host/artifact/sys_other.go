//go:build !linux

package artifact

import (
	"io/fs"
	"os"
)

// Hosts run Linux; elsewhere (development) durability is best effort and
// usage is apparent size.

func syncFS(dir string) error { return nil }

func syncDir(dir string) {
	if f, err := os.Open(dir); err == nil {
		f.Sync()
		f.Close()
	}
}

func diskUsage(fi fs.FileInfo) (bytes int64, key [2]uint64, linked bool) {
	return fi.Size(), key, false
}
