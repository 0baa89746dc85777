// Package backup is the format of a cluster backup and the rules for
// bringing one back. A backup is one uncompressed tar stream, written
// while the cluster serves and read without trusting it: a marker entry
// first (so a wrong file is told apart at once), then an etcd snapshot,
// the cluster CA, the first API key's file when the serving server has
// it, and every blob kept releases and builds need, each entry hashed
// as it streams; the manifest (versions, the cluster's domain, and each
// entry's size and SHA-256) comes last, so nothing is buffered, followed
// by the manifest's own checksum. Verify reads a whole file and refuses
// it, naming what is wrong, unless every entry is present, known and
// matches; only then does Extract hand entries out, checking them again,
// so a file that changes between the two passes is refused as well.
// Entry names never become paths: each has a fixed shape, and a blob is
// stored by its checked digest. Clean turns the snapshot's keys into
// what a fresh cluster may load: state that belonged to the old machines
// (hosts, jobs, instances, leases, leaders) is left out, and routes and
// artifact addresses move to the new domain and server. The file holds
// the CA's private key and the store's secrets: it is as secret as the
// cluster itself.
package backup
