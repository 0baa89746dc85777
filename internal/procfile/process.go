package procfile

import (
	"strings"

	"github.com/pierpaas/pier/api"
)

// WebProcess is the process type that gets the app's HTTP port and route,
// as on Heroku.
const WebProcess = "web"

// Shell runs every Procfile command. An absolute path, because the
// release's environment may set PATH to the app's own directories.
const Shell = "/bin/sh"

// ProcessTypes turns a Procfile into a release's process types. Every
// command becomes Args {"/bin/sh", "-c", command}: the command is shell
// text written for Heroku ($PORT, &&, quoting), and this argv runs inside
// the app's container, so the shell it starts is the app's, with the app's
// environment, never a server's.
//
// When the command is a single simple command, it is prefixed with "exec"
// (see Command). web gets an http port registered as service
// "web.<app>" with a TCP health check; release (api.ReleaseProcess), which
// runs once before a deploy, gets RestartNever and no port. Everything
// else gets the zero value of the other fields, which the controller may
// fill from its own defaults.
func ProcessTypes(app string, pf Procfile) map[string]api.ProcessType {
	out := make(map[string]api.ProcessType, len(pf))
	for name, cmd := range pf {
		pt := api.ProcessType{Args: []string{Shell, "-c", Command(cmd)}}
		switch name {
		case WebProcess:
			pt.Ports = []api.Port{{
				Proto:   "http",
				Service: api.ServiceName(app, WebProcess),
				Health:  &api.HealthCheck{Kind: "tcp"},
			}}
		case api.ReleaseProcess:
			pt.Restart = api.RestartNever
		}
		out[name] = pt
	}
	return out
}

// Command returns the script sh -c runs for a Procfile command: the
// command itself, prefixed with "exec " when that cannot change its
// meaning.
//
// Why exec: the job's first process is PID 1 of its container, and the
// kernel delivers no signal to PID 1 for which it has no handler. Without
// exec that process is sh, which installs no SIGTERM handler and waits for
// its child, so a stop's SIGTERM is dropped, the app never hears it, and
// the job is SIGKILLed when its grace period ends: no draining, no clean
// shutdown. With exec the app replaces sh and receives SIGTERM itself
// (whether it handles it is then up to the app, as under Docker). Where a
// job is not PID 1, exec still matters: a SIGTERM to sh would kill sh and
// orphan the app.
//
// Why only sometimes: exec applies to one simple command. Prefixed to
// "cd web && node server.js" it would run a program called cd; to
// "migrate; serve" it would never reach serve; to "PORT=5001 serve" it
// would run a program called "PORT=5001". Those commands are left as
// they are (dash and bash exec the last command of many such scripts on
// their own). The check is lexical and conservative: anything it is unsure
// of is left alone, which only costs the graceful stop.
func Command(cmd string) string {
	if simpleCommand(cmd) {
		return "exec " + cmd
	}
	return cmd
}

// notPrograms are words that, first in a command, make it something other
// than one program to exec: shell reserved words, and builtins with no
// program of the same name (or whose effect is on the shell itself).
var notPrograms = map[string]bool{
	// reserved words (POSIX, bash)
	"!": true, "{": true, "}": true, "case": true, "do": true, "done": true, "elif": true,
	"else": true, "esac": true, "fi": true, "for": true, "if": true, "in": true, "then": true,
	"until": true, "while": true, "function": true, "select": true, "time": true,
	"coproc": true, "[[": true,
	// builtins
	".": true, ":": true, "alias": true, "bg": true, "break": true, "builtin": true,
	"cd": true, "command": true, "continue": true, "declare": true, "eval": true,
	"exec": true, "exit": true, "export": true, "fg": true, "getopts": true, "hash": true,
	"jobs": true, "let": true, "local": true, "read": true, "readonly": true, "return": true,
	"set": true, "shift": true, "source": true, "times": true, "trap": true, "type": true,
	"typeset": true, "ulimit": true, "umask": true, "unalias": true, "unset": true, "wait": true,
}

// simpleCommand reports whether cmd is, as far as a lexical scan can tell,
// one simple command that names a program: no unquoted list or pipeline
// operator (; & | && ||), no subshell, grouping or unquoted command
// substitution, no leading variable assignment or redirection, and an
// unquoted first word that is a program rather than a reserved word or
// builtin (quotes would let a builtin through: 'c'd is still cd). Quoted text and backslash escapes are
// skipped; "2>&1" and "<&0" are redirections, not the & operator.
func simpleCommand(cmd string) bool {
	cmd = strings.TrimSpace(cmd)
	first, ok := firstWord(cmd)
	// A leading redirection would hide the real first word: in
	// ">log PORT=1 serve", exec would run a program called "PORT=1".
	if !ok || first == "" || notPrograms[first] || isAssignment(first) || strings.ContainsAny(first, "<>") {
		return false
	}
	var quote byte // 0, '\'' or '"'
	for i := 0; i < len(cmd); i++ {
		c := cmd[i]
		switch {
		case quote == '\'':
			if c == '\'' {
				quote = 0
			}
		case c == '\\':
			i++ // the next byte is literal (in double quotes too, near enough)
		case quote == '"':
			if c == '"' {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == ';' || c == '|' || c == '(' || c == ')' || c == '`' || c == '\n':
			return false
		case c == '&':
			if i == 0 || (cmd[i-1] != '>' && cmd[i-1] != '<') {
				return false
			}
		}
	}
	return quote == 0 // an unterminated quote: let sh report it as written
}

// firstWord returns cmd's first word up to unquoted white space, and false
// if it has quotes or escapes, which make its meaning a matter for sh.
func firstWord(cmd string) (string, bool) {
	end := strings.IndexAny(cmd, " \t")
	if end < 0 {
		end = len(cmd)
	}
	w := cmd[:end]
	return w, !strings.ContainsAny(w, `'"\`)
}

// isAssignment reports whether w is NAME=value, which sh takes as a
// variable assignment rather than a program name.
func isAssignment(w string) bool {
	name, _, ok := strings.Cut(w, "=")
	if !ok || name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c != '_' && (c < 'A' || c > 'Z') && (c < 'a' || c > 'z') && (i == 0 || c < '0' || c > '9') {
			return false
		}
	}
	return true
}
