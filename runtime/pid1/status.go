package pid1

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The status pipe carries one line: "status N" with the command's raw
// wait status, or "error MESSAGE" when it could not be started. Text, so
// that a stray reader or a strace shows what it means.

// WriteStatus reports how the command ended.
func WriteStatus(w io.Writer, ws syscall.WaitStatus) {
	fmt.Fprintf(w, "status %d\n", uint32(ws))
}

// WriteError reports that the command could not be started.
func WriteError(w io.Writer, err error) {
	fmt.Fprintf(w, "error %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
}

// deadliner is an *os.File from a pipe.
type deadliner interface {
	SetReadDeadline(time.Time) error
}

// ReadStatus reads what the init wrote once it has exited: ok is false if
// it wrote nothing (it was killed first, as by SIGKILL, or never got that
// far), and err is non-nil if it reported that the command could not
// start. Once the init is gone nothing else holds the pipe's write end, so
// the read ends at once; a deadline guards against one that leaked.
func ReadStatus(r io.Reader) (ws syscall.WaitStatus, ok bool, err error) {
	if d, isFile := r.(deadliner); isFile {
		_ = d.SetReadDeadline(time.Now().Add(time.Second))
	}
	b, _ := io.ReadAll(io.LimitReader(r, 4096))
	line := strings.TrimSpace(string(b))
	if msg, found := strings.CutPrefix(line, "error "); found {
		return 0, false, fmt.Errorf("%s", msg)
	}
	v, found := strings.CutPrefix(line, "status ")
	if !found {
		return 0, false, nil
	}
	n, perr := strconv.ParseUint(v, 10, 32)
	if perr != nil {
		return 0, false, nil
	}
	return syscall.WaitStatus(n), true, nil
}
