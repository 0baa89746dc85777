package runtime

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// consoleSocket is where runc run --console-socket sends the master end
// of the pty it makes for a TTY container. It lives in a short temporary
// directory, not in the bundle, because a socket path must fit in 108 bytes
// and a bundle path with a 64-byte id may not.
type consoleSocket struct {
	dir  string
	path string
	ln   *net.UnixListener
}

type consoleResult struct {
	f   *os.File
	err error
}

func newConsoleSocket() (*consoleSocket, error) {
	dir, err := os.MkdirTemp("", "pier-tty-")
	if err != nil {
		return nil, fmt.Errorf("runtime: console socket: %w", err)
	}
	path := filepath.Join(dir, "s")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("runtime: console socket: %w", err)
	}
	return &consoleSocket{dir: dir, path: path, ln: ln}, nil
}

// receive accepts runc's connection and returns the pty master it passes.
func (c *consoleSocket) receive() (*os.File, error) {
	_ = c.ln.SetDeadline(time.Now().Add(2 * time.Minute))
	conn, err := c.ln.AcceptUnix()
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Minute))
	name := make([]byte, 4096) // runc sends the pty's name along with it
	oob := make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := conn.ReadMsgUnix(name, oob)
	if err != nil {
		return nil, err
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return nil, err
	}
	if len(msgs) != 1 {
		return nil, errors.New("no descriptor received")
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil {
		return nil, err
	}
	if len(fds) == 0 {
		return nil, errors.New("no descriptor received")
	}
	for _, fd := range fds[1:] {
		unix.Close(fd)
	}
	unix.CloseOnExec(fds[0])
	// Non-blocking, so the file joins Go's poller and Close interrupts a
	// pending Read.
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		return nil, err
	}
	return os.NewFile(uintptr(fds[0]), string(name[:n])), nil
}

func (c *consoleSocket) close() {
	c.ln.Close()
	os.RemoveAll(c.dir)
}
