package postgres

import (
	"github.com/pierpaas/pier/api"
)

// Backups are pg_dump's custom format (-Fc): compressed, and what the
// system pg_restore reads, so a downloaded backup loads into any
// PostgreSQL 15 or later.

// Dump runs pg_dump as the superuser: it reads every object whatever
// its owner.
func (p Provider) Dump(addr string, sec *api.ResourceSecret, database string) ([]string, map[string]string) {
	_, env := p.Client(addr, sec, nil, "")
	env["PGDATABASE"] = database
	return []string{BinDir + "/pg_dump", "--format=custom", "--no-password"}, env
}

// Restore runs pg_restore as the superuser, acting as a's role: objects
// are made by (so owned by) the role, whoever owned them where the dump
// was taken, and their grants are left out, so a backup of one
// database loads into another app's. --clean drops what the dump holds
// first, and one transaction makes the whole restore happen or none of
// it.
func (p Provider) Restore(addr string, sec *api.ResourceSecret, a *api.Attachment) ([]string, map[string]string) {
	_, env := p.Client(addr, sec, nil, "")
	env["PGDATABASE"] = a.Database
	return []string{BinDir + "/pg_restore", "--no-password", "--clean", "--if-exists", "--no-owner", "--no-acl",
		"--role=" + a.Role, "--single-transaction", "--exit-on-error", "--dbname=" + a.Database}, env
}
