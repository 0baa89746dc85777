package postgres

import (
	"context"
	"fmt"
	"regexp"
	"strconv"

	"github.com/jackc/pgx/v5"

	"github.com/pierpaas/pier/api"
)

// Credential rotation without a failed login: PostgreSQL gives a role one
// password, so a rotation makes a second login role for the attachment,
// a member of its role whose sessions act as it (ALTER ROLE … SET role):
// what they make is the role's, as before. The app is released with the
// new login while the old one still works, and the old one is retired
// once no job of the old release is left. An attachment alternates
// between ROLE.1 and ROLE.2 (a dot: no app's role can be named so), its
// own role logging in only until its first rotation.

// loginName is the attachment's nth login role.
func loginName(role string, n int) string {
	if len(role) > 61 {
		role = role[:61]
	}
	return role + "." + strconv.Itoa(n)
}

var loginRE = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*\.[12]$`)

// NextLogin alternates between the two logins.
func (Provider) NextLogin(a *api.Attachment) string {
	if a.Login == loginName(a.Role, 1) {
		return loginName(a.Role, 2)
	}
	return loginName(a.Role, 1)
}

// AddLogin makes login (or sets its password again), a member of a's
// role that acts as it from its first statement.
func (Provider) AddLogin(ctx context.Context, addr string, sec *api.ResourceSecret, a *api.Attachment, login, password string) error {
	if err := checkNames(a); err != nil {
		return err
	}
	if !loginRE.MatchString(login) {
		return fmt.Errorf("postgres: login %q is not an attachment's login", login)
	}
	v, err := Verifier(password)
	if err != nil || !verifierRE.MatchString(v) {
		return fmt.Errorf("postgres: verifier: %v", err)
	}
	conn, err := connect(ctx, addr, sec, "postgres")
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var have bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", login).Scan(&have); err != nil {
		return err
	}
	l, role := pgx.Identifier{login}.Sanitize(), pgx.Identifier{a.Role}.Sanitize()
	verb := "CREATE"
	if have {
		verb = "ALTER"
	}
	for _, s := range []string{
		fmt.Sprintf("%s ROLE %s LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE INHERIT PASSWORD '%s'", verb, l, v),
		fmt.Sprintf("GRANT %s TO %s", role, l),
		// A literal, not an identifier: SET role takes a role's name.
		fmt.Sprintf("ALTER ROLE %s SET role = '%s'", l, a.Role),
	} {
		if _, err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("postgres: add login %s: %w", login, err)
		}
	}
	return nil
}

// RetireLogin takes login's right to log in, and its password.
func (Provider) RetireLogin(ctx context.Context, addr string, sec *api.ResourceSecret, a *api.Attachment, login string) error {
	if err := checkNames(a); err != nil {
		return err
	}
	if login != a.Role && !loginRE.MatchString(login) {
		return fmt.Errorf("postgres: login %q is not an attachment's login", login)
	}
	conn, err := connect(ctx, addr, sec, "postgres")
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, fmt.Sprintf("ALTER ROLE %s NOLOGIN PASSWORD NULL", pgx.Identifier{login}.Sanitize()))
	return err
}
