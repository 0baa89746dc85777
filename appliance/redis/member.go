package redis

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
)

// MemberCommand is the pier subcommand a member job runs.
const MemberCommand = "redis-member"

var hashRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// MemberArgs are redis-server's settings: the job's port on every
// address; the data on the volume, an append-only file fsynced every
// second (at most a second of writes lost to a crash) beside RDB
// snapshots (Redis's default schedule); the default user's password as its hash; ACL users kept
// in a file on the volume, so attachments survive a restart; memory
// below the job's limit, refusing writes past it rather than evicting
// an app's keys.
func MemberArgs(port int, hash string) ([]string, error) {
	if !hashRE.MatchString(hash) {
		return nil, fmt.Errorf("redis member: $%s is not a SHA-256", HashEnv)
	}
	return []string{
		"--port", strconv.Itoa(port),
		"--bind", "0.0.0.0",
		"--protected-mode", "no",
		"--dir", DataPath,
		"--appendonly", "yes",
		"--appendfsync", "everysec",
		"--aclfile", filepath.Join(DataPath, "users.acl"),
		"--maxmemory", strconv.FormatInt(memberResources.MemoryMB*3/4, 10) + "mb",
		"--maxmemory-policy", "noeviction",
		"--daemonize", "no",
	}, nil
}

// RunMember makes the ACL file if the volume has none (Redis refuses to
// start without it) with the default user's password, then becomes
// redis-server: a stop's SIGTERM makes Redis write its data and exit.
func RunMember() error {
	port, err := strconv.Atoi(os.Getenv("PORT"))
	if err != nil || port <= 0 {
		return fmt.Errorf("redis member: no port ($PORT=%q)", os.Getenv("PORT"))
	}
	hash := os.Getenv(HashEnv)
	args, err := MemberArgs(port, hash)
	if err != nil {
		return err
	}
	acl := filepath.Join(DataPath, "users.acl")
	if err := writeDefaultUser(acl, hash); err != nil {
		return err
	}
	return syscall.Exec(ServerBin, append([]string{ServerBin}, args...), os.Environ())
}

// writeDefaultUser makes sure the ACL file holds the default user with
// the resource's password, keeping the attachments' users.
func writeDefaultUser(path, hash string) error {
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	out := "user default on #" + hash + " ~* &* +@all\n"
	for _, line := range regexp.MustCompile(`\r?\n`).Split(string(b), -1) {
		if line != "" && !regexp.MustCompile(`^user default `).MatchString(line) {
			out += line + "\n"
		}
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(out), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
