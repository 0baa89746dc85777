// Command pier is the single binary of the pier platform: every daemon and
// the command-line client.
package main

import (
	"os"

	"github.com/pierpaas/pier/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:]))
}
