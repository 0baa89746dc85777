package procfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/pierpaas/pier/api"
)

// MaxSize bounds a Procfile. Real ones are a few lines; the bound only
// keeps a mistaken upload (a binary named Procfile) from being read whole.
const MaxSize = 64 << 10

// ErrSyntax marks every complaint about a Procfile's content; the
// *LineError wrapping it names the line.
var ErrSyntax = errors.New("procfile: invalid Procfile")

// LineError says which line of a Procfile is wrong and why.
type LineError struct {
	Line   int // 1-based
	Reason string
}

func (e *LineError) Error() string { return fmt.Sprintf("Procfile line %d: %s", e.Line, e.Reason) }
func (e *LineError) Unwrap() error { return ErrSyntax }

// Procfile maps process type names to their commands. It is a map, not an
// ordered list, because that is all a release keeps (api.Release.Processes
// is a map) and the file's order means nothing to Heroku either; callers
// that display process types sort the names.
type Procfile map[string]string

// Parse reads a Procfile: one "name: command" per line; blank lines and
// lines starting with '#' are ignored; CRLF line ends and a leading UTF-8
// byte order mark (left by some Windows editors) are tolerated. The name
// may have spaces around it and the command is trimmed; anything after the
// first ':' belongs to the command, so "web: sh -c 'a: b'" is fine. An
// empty Procfile is an empty map, not an error: whether a release needs a
// web process is the caller's business.
func Parse(r io.Reader) (Procfile, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("procfile: read: %w", err)
	}
	if len(b) > MaxSize {
		return nil, fmt.Errorf("%w: larger than %d KiB", ErrSyntax, MaxSize>>10)
	}
	b = bytes.TrimPrefix(b, []byte("\ufeff"))
	pf := Procfile{}
	seen := map[string]int{} // name -> line, for the duplicate message
	for i, line := range strings.Split(string(b), "\n") {
		n := i + 1
		line = strings.TrimSuffix(line, "\r")
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		name, cmd, ok := strings.Cut(trimmed, ":")
		if !ok {
			return nil, &LineError{n, fmt.Sprintf("%q is not \"name: command\"", trimmed)}
		}
		name, cmd = strings.TrimSpace(name), strings.TrimSpace(cmd)
		if err := validName(name); err != "" {
			return nil, &LineError{n, err}
		}
		if first, dup := seen[name]; dup {
			return nil, &LineError{n, fmt.Sprintf("process type %s is already defined on line %d", name, first)}
		}
		switch {
		case cmd == "":
			return nil, &LineError{n, fmt.Sprintf("process type %s has no command", name)}
		case strings.ContainsRune(cmd, 0):
			// An argv string cannot hold NUL; exec would fail on the host.
			return nil, &LineError{n, fmt.Sprintf("process type %s: NUL byte in command", name)}
		}
		seen[name] = n
		pf[name] = cmd
	}
	return pf, nil
}

// validName refuses what Heroku accepts ([A-Za-z0-9_-]+) but a DNS label
// cannot hold: process type names end up in job ids and in service names
// that discovery serves over DNS, so "Web" or "my_worker" would have to be
// mangled later, and two names could collide after mangling.
func validName(name string) string {
	switch {
	case name == "":
		return "no process type name before ':'"
	case !api.ValidID(name):
		return fmt.Sprintf("process type name %q is invalid: use at most 63 lower-case letters, digits and single dashes between them (it becomes part of DNS names)", name)
	}
	return ""
}
