package api

import (
	"crypto/sha256"
	"encoding/binary"
)

// Every app's jobs run under a uid (and gid) of their own, taken from
// [AppUIDBase, AppUIDBase+AppUIDCount) by AppUID. Jobs that belong to no
// app (`pier host run`, tests) run as the runtime's default user, uid
// 1000, which no app gets.
//
// The uid is a pure function of the app's name rather than a number the
// controller hands out and stores: every host agent derives the same uid
// from the job's App label with no lookup, no new record and no
// migration, so existing apps, their builds, one-off jobs and resource
// members (a resource's jobs carry the resource's own app name) all get
// one, and a volume keeps its owner when its job moves to another host.
//
// The price is that two names can hash to the same uid. The range is made
// large to keep that unlikely: with 2^30 slots the chance that some pair
// among n apps collides is about n²/2^31, 0.05% for 1,000 apps and 4.6%
// for 10,000. A shared uid weakens a defence in depth, it opens no door:
// jobs still have their own PID, mount, IPC and network namespaces, their
// own volumes (mounted only into their own jobs), their own copy of their
// artifact and no capabilities, so what two colliding apps share is what
// the kernel keys by uid alone (per-user limits, and access after a
// container escape). An operator who must rule it out can compare AppUID
// over the app list and rename an app.
//
// The range, 16,777,216 to 1,090,519,039, starts far above the host's
// system and login users and the /etc/subuid ranges useradd hands out
// from 100,000 (65,536 per user), and ends below 2^31, so no tool that
// takes uids for signed 32-bit numbers trips on it, and below the range
// systemd-nsresourced allocates from (1,879,048,192). It does overlap
// the range systemd-nspawn --private-users=pick draws from: do not run
// such containers on a pier host.
const (
	AppUIDBase  = 1 << 24
	AppUIDCount = 1 << 30
)

// AppUID is the uid, and gid, of app's jobs: AppUIDBase plus the first 8
// bytes of SHA-256(app), big-endian, modulo AppUIDCount. It never changes
// for a name, so it must not change in code either: a new mapping would
// re-own every volume on the next start of its job.
func AppUID(app string) int {
	sum := sha256.Sum256([]byte(app))
	return AppUIDBase + int(binary.BigEndian.Uint64(sum[:8])%AppUIDCount)
}
