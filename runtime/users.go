package runtime

import "fmt"

// The uids and gids a job may be given with Spec.UID and Spec.GID. Below
// MinJobUID live the host's system and login users; MaxJobUID keeps ids
// clear of the top half of the 32-bit range, which tools that take uids
// for signed numbers mishandle, and of (uid_t)-1. NobodyUID (65534) is
// refused: files owned by "nobody" are what a host shows for ids it
// cannot map, and no job should own them.
const (
	MinJobUID = AppUID
	MaxJobUID = 1<<31 - 2
	NobodyUID = 65534
)

// user is the uid and gid the job's process runs as: 0:0 with Root, else
// UID (default AppUID) and GID (default the uid, so that each app user
// has a group of its own, and AppGID for the default user).
func (s Spec) user() (uid, gid int) {
	if s.Root {
		return 0, 0
	}
	uid, gid = s.UID, s.GID
	if uid == 0 {
		uid = AppUID
	}
	if gid == 0 {
		gid = uid
		if uid == AppUID {
			gid = AppGID
		}
	}
	return uid, gid
}

// validateUser checks UID and GID; a zero value takes the default.
func (s Spec) validateUser() error {
	if s.Root && (s.UID != 0 || s.GID != 0) {
		return fmt.Errorf("%w: a root job cannot also run as uid %d gid %d", ErrInvalidSpec, s.UID, s.GID)
	}
	for _, id := range []struct {
		name string
		v    int
	}{{"uid", s.UID}, {"gid", s.GID}} {
		if id.v != 0 && (id.v < MinJobUID || id.v > MaxJobUID || id.v == NobodyUID) {
			return fmt.Errorf("%w: %s %d outside %d-%d (or nobody's)", ErrInvalidSpec, id.name, id.v, MinJobUID, MaxJobUID)
		}
	}
	return nil
}

// etcUsers are the /etc/passwd and /etc/group of a job on the host stack:
// its uid is "app", with /app as its home, as on a Heroku dyno.
func (s Spec) etcUsers() (passwd, group string) {
	uid, gid := s.user()
	if s.Root {
		uid, gid = AppUID, AppGID
	}
	passwd = "root:x:0:0:root:/root:/bin/sh\n" +
		fmt.Sprintf("app:x:%d:%d:app:/app:/bin/sh\n", uid, gid) +
		"nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
	group = "root:x:0:\n" +
		"tty:x:5:\n" +
		fmt.Sprintf("app:x:%d:\n", gid) +
		"nogroup:x:65534:\n"
	return passwd, group
}
