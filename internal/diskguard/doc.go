// Package diskguard watches the free space of a daemon's data directory
// and acts before the disk is full, not after: below a threshold the disk
// is "under pressure", the daemon refuses new work that would write there
// (builds, uploads, new jobs) and its embedded etcd stops taking writes
// (etcd's own NOSPACE alarm), so that nothing fails half-written, and a
// preallocated reserve file is given back so that what must still write
// (etcd's alarm and compaction, deletions, the daemons' own state) has
// room. When space returns the reserve is taken again and everything
// resumes by itself. A full disk then costs new work, never the service
// of what runs (the router serves from its tables, jobs keep running)
// and never a crash half-way through a commit, which is what it cost
// before: etcd exits when bbolt cannot write.
package diskguard
