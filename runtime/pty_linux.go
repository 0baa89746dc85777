package runtime

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// openPTY allocates a pseudo-terminal pair without cgo.
func openPTY() (master, slave *os.File, err error) {
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("runtime: open /dev/ptmx: %w", err)
	}
	master = os.NewFile(uintptr(fd), "/dev/ptmx")
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("runtime: unlock pty: %w", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("runtime: pty number: %w", err)
	}
	name := fmt.Sprintf("/dev/pts/%d", n)
	slave, err = os.OpenFile(name, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("runtime: open %s: %w", name, err)
	}
	return master, slave, nil
}

// setConsoleSize sets a pty's window size, unless size is zero.
func setConsoleSize(master *os.File, size ConsoleSize) error {
	if size.Rows == 0 || size.Cols == 0 {
		return nil
	}
	// Through SyscallConn, not Fd, which would make the file blocking and
	// so no longer interruptible by Close.
	rc, err := master.SyscallConn()
	if err != nil {
		return fmt.Errorf("runtime: set console size: %w", err)
	}
	ws := &unix.Winsize{Row: size.Rows, Col: size.Cols}
	if cerr := rc.Control(func(fd uintptr) { err = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, ws) }); cerr != nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("runtime: set console size: %w", err)
	}
	return nil
}
