//go:build unix && !linux

package runtime

import (
	"fmt"
	"os"
)

// openPTY is only written for Linux; the process driver has no TTY
// elsewhere.
func openPTY() (master, slave *os.File, err error) {
	return nil, nil, fmt.Errorf("%w: a TTY outside Linux", ErrUnsupported)
}

func setConsoleSize(*os.File, ConsoleSize) error { return nil }
