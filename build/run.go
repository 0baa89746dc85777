package build

import (
	"fmt"
	"os"
	"syscall"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/internal/procfile"
	"github.com/pierpaas/pier/runtime/pid1"
)

// SlugDir is where a slug is mounted in its containers, and where it is
// built.
const SlugDir = "/app"

// slugShell runs the prelude and then the command.
const slugShell = "/bin/bash"

// defaultPath is the PATH of a process whose container set none.
const defaultPath = "/usr/local/bin:/usr/bin:/bin"

// slugPrelude is what Heroku's dyno manager does before a process type's
// command: source the buildpacks' .profile.d scripts, then the app's own
// .profile, then run the command as shell text. It is a constant script;
// the command comes in as $1 and is evaluated, never pasted into the
// script, so a command cannot change what runs before it.
const slugPrelude = `for f in "$HOME"/.profile.d/*.sh; do
	if [ -r "$f" ]; then . "$f"; fi
done
if [ -r "$HOME/.profile" ]; then . "$HOME/.profile"; fi
hash -r
eval "$1"`

// SlugArgs is the argv of a container that runs one process type's
// command from a slug: the pier binary the host binds into every
// container, as its slug runner.
func SlugArgs(command string) []string {
	return []string{api.PierBinary, "slugrun", "--", command}
}

// RunSlug runs the Procfile command the way Heroku runs it: HOME=/app,
// DYNO=<process type>.<job id> when the host agent said which,
// .profile.d/*.sh and .profile sourced, then the command under bash in
// /app. PORT and the PIER_* variables the host agent set are kept. It
// replaces itself with the command, unless it is a container's first
// process: then it stays as the command's init (runtime/pid1) and exits
// as the command does. It returns only on failure.
func RunSlug(command string) error {
	argv, env := slugExec(SlugDir, command, os.Environ())
	if err := os.Chdir(SlugDir); err != nil {
		return fmt.Errorf("slugrun: %w", err)
	}
	if os.Getpid() == 1 {
		// Without pier init before it (see runtime/pid1), the runner is
		// the init itself.
		code, err := pid1.Run(argv, env, SlugDir, nil)
		if err != nil {
			return fmt.Errorf("slugrun: start %s: %w", argv[0], err)
		}
		os.Exit(code)
	}
	if err := syscall.Exec(argv[0], argv, env); err != nil {
		return fmt.Errorf("slugrun: exec %s: %w", argv[0], err)
	}
	return nil
}

// SlugCommand is what RunSlug runs for command, and where: pier init
// runs it itself when a job's command is the slug runner, sparing the
// job a second start of the pier binary.
func SlugCommand(command string) (argv, env []string, dir string) {
	argv, env = slugExec(SlugDir, command, os.Environ())
	return argv, env, SlugDir
}

// slugExec returns the argv and environment RunSlug execs, for an app in
// appDir; tests run them with a copy of the app elsewhere.
func slugExec(appDir, command string, environ []string) (argv, env []string) {
	env = setEnv(environ, "HOME", appDir)
	if pt, job := getEnv(env, "PIER_PROCESS_TYPE"), getEnv(env, "PIER_JOB_ID"); pt != "" && job != "" {
		env = setEnv(env, "DYNO", pt+"."+job)
	}
	if getEnv(env, "PATH") == "" {
		env = setEnv(env, "PATH", defaultPath)
	}
	// procfile.Command adds exec when the command is one program, so that
	// the app, not bash, gets the container's SIGTERM.
	return []string{slugShell, "-c", slugPrelude, "slugrun", procfile.Command(command)}, env
}
