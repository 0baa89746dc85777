package cli

import (
	"os"
	"os/signal"
	"syscall"
)

func ignoreTerminalSignals() {
	signal.Ignore(os.Interrupt, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE)
}
