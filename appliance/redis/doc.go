// Package redis is the Redis appliance: a resource is one Redis server
// (Debian's redis-server, bound in from the host's /usr like every stack
// job's) run by `pier redis-member` as the only job of a system app, with
// its data (an append-only file, fsynced every second, and RDB
// snapshots) on the job's volume. Each attached app gets an ACL user of
// its own with a random password; the keyspace is shared by the apps
// attached, as on Heroku. The controller makes users over the wire (a
// few RESP commands, resp.go) as the default user, whose password only
// servers know: the member's environment carries its SHA-256, which is
// what Redis's ACL stores.
package redis
