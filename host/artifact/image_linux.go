//go:build linux

package artifact

import "golang.org/x/sys/unix"

// whiteout makes the overlayfs whiteout for a deleted name.
func whiteout(p string) error { return unix.Mknod(p, unix.S_IFCHR, 0) }

// setOpaque marks a directory as hiding everything lower layers have in it.
func setOpaque(dir string) error {
	return unix.Setxattr(dir, "trusted.overlay.opaque", []byte("y"), 0)
}
