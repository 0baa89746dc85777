//go:build !linux

package volume

// Volumes need loop devices and ext4: Linux only.

func (m *Manager) Ensure(id string, sizeMB int64, uid, gid int) (string, error) {
	return "", ErrUnsupported
}
func (m *Manager) Mount(id string) error   { return ErrUnsupported }
func (m *Manager) Unmount(id string) error { return ErrUnsupported }
func (m *Manager) Remove(id string) error  { return ErrUnsupported }
func (m *Manager) MountAll() error         { return ErrUnsupported }
func (m *Manager) UnmountAll() error       { return nil }

// Mounted is never true where volumes cannot be mounted.
func Mounted(path string) (bool, error) { return false, nil }
