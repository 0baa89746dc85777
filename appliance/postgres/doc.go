// Package postgres is the PostgreSQL appliance: a resource is one
// PostgreSQL server (Debian's packaged binaries, bound in from the host's
// /usr like every stack job's) run by `pier postgres-member` as the only
// job of a system app, with its data directory on the job's volume. The
// member makes the data directory on its first start and runs postgres
// in the foreground, its log on stderr, so `pier logs` shows it. Each
// attached app gets a database and a login role of its own; the
// controller makes them over the wire with pgx, as the superuser whose
// password only servers know: the member's environment carries its
// SCRAM verifier, from which the password cannot be recovered.
package postgres
