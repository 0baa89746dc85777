package postgres

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pierpaas/pier/api"
)

// What the controller does on a member, over the wire as the superuser.
// Role and database names are the attached apps' names (DNS labels),
// always quoted as identifiers; passwords go in as SCRAM verifiers.

// connectTimeout bounds a connection to a member: one that does not
// answer in time is retried by the next pass of the loop.
const connectTimeout = 5 * time.Second

func connect(ctx context.Context, addr string, sec *api.ResourceSecret, database string) (*pgx.Conn, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, err
	}
	cfg, err := pgx.ParseConfig("sslmode=disable")
	if err != nil {
		return nil, err
	}
	cfg.Host, cfg.Port, cfg.User, cfg.Password, cfg.Database = host, uint16(port), AdminUser, sec.AdminPassword, database
	cfg.ConnectTimeout = connectTimeout
	cfg.RuntimeParams["application_name"] = "pier-controller"
	return pgx.ConnectConfig(ctx, cfg)
}

// Ready connects as the superuser and asks for nothing.
func (Provider) Ready(ctx context.Context, addr string, sec *api.ResourceSecret) error {
	conn, err := connect(ctx, addr, sec, "postgres")
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return conn.Ping(ctx)
}

// Bind makes a's role (or sets its password again) and its database,
// owned by the role, which only it (and the superuser) may connect to.
func (Provider) Bind(ctx context.Context, addr string, sec *api.ResourceSecret, a *api.Attachment, password string) error {
	if err := checkNames(a); err != nil {
		return err
	}
	v, err := Verifier(password)
	if err != nil {
		return err
	}
	if !verifierRE.MatchString(v) {
		return fmt.Errorf("postgres: malformed verifier")
	}
	conn, err := connect(ctx, addr, sec, "postgres")
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	role, db := pgx.Identifier{a.Role}.Sanitize(), pgx.Identifier{a.Database}.Sanitize()
	var haveRole, haveDB bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", a.Role).Scan(&haveRole); err != nil {
		return err
	}
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", a.Database).Scan(&haveDB); err != nil {
		return err
	}
	verb := "CREATE"
	if haveRole {
		verb = "ALTER"
	}
	stmts := []string{fmt.Sprintf("%s ROLE %s LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '%s'", verb, role, v)}
	if haveDB {
		stmts = append(stmts, fmt.Sprintf("ALTER DATABASE %s OWNER TO %s", db, role))
	} else {
		stmts = append(stmts, fmt.Sprintf("CREATE DATABASE %s OWNER %s", db, role))
	}
	stmts = append(stmts, fmt.Sprintf("REVOKE ALL ON DATABASE %s FROM PUBLIC", db))
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("postgres: bind %s: %w", a.App, err)
		}
	}
	return nil
}

// Unbind ends the role's sessions, gives what it owns (its database, its
// tables) to the superuser, and drops it. The data stays: pg:psql reaches
// it, and attaching the app again makes the database its new role's.
func (Provider) Unbind(ctx context.Context, addr string, sec *api.ResourceSecret, a *api.Attachment) error {
	if err := checkNames(a); err != nil {
		return err
	}
	conn, err := connect(ctx, addr, sec, "postgres")
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var haveDB bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", a.Database).Scan(&haveDB); err != nil {
		return err
	}
	// The role, and the logins a credential rotation made for it.
	var names []string
	if err := conn.QueryRow(ctx, "SELECT array_agg(rolname ORDER BY rolname DESC) FROM pg_roles WHERE rolname = ANY($1)",
		[]string{a.Role, loginName(a.Role, 1), loginName(a.Role, 2)}).Scan(&names); err != nil {
		return err
	}
	// Descending: the logins (ROLE.2, ROLE.1) before the role they are
	// members of.
	if len(names) == 0 {
		return nil
	}
	roles := make([]string, len(names))
	for i, n := range names {
		roles[i] = pgx.Identifier{n}.Sanitize()
	}
	all := strings.Join(roles, ", ")
	// No new sessions, then none left.
	for _, r := range roles {
		if _, err := conn.Exec(ctx, fmt.Sprintf("ALTER ROLE %s NOLOGIN", r)); err != nil {
			return err
		}
	}
	if _, err := conn.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = ANY($1)", names); err != nil {
		return err
	}
	// REASSIGN and DROP OWNED act on the database they run in (and on
	// shared objects such as databases): once in the role's database,
	// once in postgres for anything it was granted there.
	if haveDB {
		dconn, err := connect(ctx, addr, sec, a.Database)
		if err != nil {
			return err
		}
		_, err = dconn.Exec(ctx, fmt.Sprintf("REASSIGN OWNED BY %s TO %s", all, AdminUser))
		if err == nil {
			_, err = dconn.Exec(ctx, fmt.Sprintf("DROP OWNED BY %s", all))
		}
		dconn.Close(context.WithoutCancel(ctx))
		if err != nil {
			return fmt.Errorf("postgres: unbind %s: %w", a.App, err)
		}
	}
	stmts := []string{
		fmt.Sprintf("REASSIGN OWNED BY %s TO %s", all, AdminUser),
		fmt.Sprintf("DROP OWNED BY %s", all),
	}
	for _, r := range roles {
		stmts = append(stmts, fmt.Sprintf("DROP ROLE %s", r))
	}
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("postgres: unbind %s: %w", a.App, err)
		}
	}
	return nil
}

// Info asks the server for its version, uptime, sizes and sessions.
func (Provider) Info(ctx context.Context, addr string, sec *api.ResourceSecret) (map[string]string, error) {
	conn, err := connect(ctx, addr, sec, "postgres")
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var version, size string
	var conns, dbs int
	var started time.Time
	err = conn.QueryRow(ctx, `SELECT current_setting('server_version'), pg_postmaster_start_time(),
		pg_size_pretty(sum(pg_database_size(datname))::bigint), count(*) FILTER (WHERE NOT datistemplate AND datname <> 'postgres'),
		(SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')
		FROM pg_database`).Scan(&version, &started, &size, &dbs, &conns)
	if err != nil {
		return nil, err
	}
	return map[string]string{
		"version": version, "started": started.UTC().Format(time.RFC3339), "data_size": size,
		"databases": strconv.Itoa(dbs), "connections": strconv.Itoa(conns),
	}, nil
}

// checkNames refuses names that are not DNS labels: they are app names,
// and anything else reaching SQL here is a bug.
func checkNames(a *api.Attachment) error {
	if !api.ValidID(a.Role) || !api.ValidID(a.Database) {
		return errors.New("postgres: role and database names must be DNS labels")
	}
	return nil
}
