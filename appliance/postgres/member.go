package postgres

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
)

// MemberCommand is the pier subcommand a member job runs.
const MemberCommand = "postgres-member"

// MemberConfig is what a member reads from its environment.
type MemberConfig struct {
	// DataDir is the data directory, on the volume.
	DataDir string
	// Port is the job's port ($PORT).
	Port int
	// Verifier is the superuser's SCRAM verifier.
	Verifier string
	// BinDir holds initdb and postgres.
	BinDir string
}

// MemberConfigFromEnv reads the member's configuration.
func MemberConfigFromEnv() (MemberConfig, error) {
	port, err := strconv.Atoi(os.Getenv("PORT"))
	if err != nil || port <= 0 {
		return MemberConfig{}, fmt.Errorf("postgres member: no port ($PORT=%q)", os.Getenv("PORT"))
	}
	v := os.Getenv(VerifierEnv)
	if !verifierRE.MatchString(v) {
		return MemberConfig{}, fmt.Errorf("postgres member: $%s is not a SCRAM verifier", VerifierEnv)
	}
	return MemberConfig{DataDir: filepath.Join(DataPath, "pgdata"), Port: port, Verifier: v, BinDir: BinDir}, nil
}

// hbaConf lets every role in by password (SCRAM) only, locally and over
// TCP: members are reached from other hosts and from the routers.
const hbaConf = `# Made by pier: password (SCRAM) logins only.
local all all scram-sha-256
host  all all 0.0.0.0/0 scram-sha-256
host  all all ::/0      scram-sha-256
`

// RunMember makes the data directory if it has none yet and runs
// postgres in the foreground until it exits. A stop's SIGTERM becomes
// SIGINT, postgres's fast shutdown (SIGTERM would wait for every client
// to hang up, past the job's grace).
func RunMember(ctx context.Context, cfg MemberConfig) error {
	if err := initData(ctx, cfg); err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(cfg.BinDir, "postgres"), postgresArgs(cfg)...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT)
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case s := <-sigs:
			if s == syscall.SIGTERM {
				s = syscall.SIGINT
			}
			cmd.Process.Signal(s)
		case err := <-done:
			return err
		}
	}
}

// postgresArgs are the server's settings: the job's port on every
// address, the socket in the job's /tmp (the container has no
// /var/run/postgresql), the log on stderr, and memory in line with the
// job's limit.
func postgresArgs(cfg MemberConfig) []string {
	return []string{
		"-D", cfg.DataDir,
		"-p", strconv.Itoa(cfg.Port),
		"-c", "listen_addresses=*",
		"-c", "unix_socket_directories=/tmp",
		"-c", "logging_collector=off",
		"-c", "shared_buffers=64MB",
		"-c", "max_connections=100",
		"-c", "password_encryption=scram-sha-256",
	}
}

// initData runs initdb into a scratch directory beside the data
// directory and renames it into place, so that a member killed halfway
// leaves no directory that looks made: the next start makes it again.
func initData(ctx context.Context, cfg MemberConfig) error {
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "PG_VERSION")); err == nil {
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	scratch := cfg.DataDir + ".init"
	if err := os.RemoveAll(scratch); err != nil {
		return err
	}
	pw, err := os.CreateTemp("", "pwfile")
	if err != nil {
		return err
	}
	defer os.Remove(pw.Name())
	// initdb sets the superuser's password to the file's first line; a
	// verifier is stored as it is.
	if _, err := pw.WriteString(cfg.Verifier + "\n"); err != nil {
		pw.Close()
		return err
	}
	if err := pw.Close(); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "pier: making the data directory %s\n", cfg.DataDir)
	cmd := exec.CommandContext(ctx, filepath.Join(cfg.BinDir, "initdb"),
		"-D", scratch, "-U", AdminUser, "--pwfile", pw.Name(),
		"--auth-local", "scram-sha-256", "--auth-host", "scram-sha-256",
		"--encoding", "UTF8", "--locale", "C", "--no-instructions")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("initdb: %w", err)
	}
	if err := os.WriteFile(filepath.Join(scratch, "pg_hba.conf"), []byte(hbaConf), 0o600); err != nil {
		return err
	}
	if err := syncDir(scratch); err != nil {
		return err
	}
	if err := os.Rename(scratch, cfg.DataDir); err != nil {
		return err
	}
	return syncDir(filepath.Dir(cfg.DataDir))
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
