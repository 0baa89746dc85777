// Package store is pier's only door to etcd, which holds all shared cluster
// state. StartMember runs an embedded etcd member secured with mutual TLS and
// Dial connects a client to the members with the node's certificate. On top
// of that client the package gives typed access to JSON values: Get, List
// (paginated), Create, Update (compare-and-swap on the key's ModRevision),
// Put and Delete, Key helpers for the keyspace under /pier/, and Txn, a
// builder for all-or-nothing multi-key writes guarded by the revisions the
// caller read, which is how the scheduler commits a plan (optimistic
// concurrency) and learns which key moved when it loses the race. Cache is a
// list+watch mirror of one prefix for level-triggered control loops: it
// lists at a revision, watches from the next one, resumes without missing or
// repeating an event when a member or the network fails, re-lists and
// emits the differences when the history it needs has been compacted, and
// signals subscribers that something changed. Values read from the store or
// a cache are shared snapshots: never mutate them.
package store
