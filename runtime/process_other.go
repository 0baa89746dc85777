//go:build unix && !linux

package runtime

// waitUnreaped is not available: the caller reaps first.
func waitUnreaped(pid int) bool { return false }
