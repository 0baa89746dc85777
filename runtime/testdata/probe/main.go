// Command probe prints the files named on its command line, or that they
// are missing: a static binary for image layers that carry no shell.
package main

import (
	"fmt"
	"os"
	"strings"
)

func main() {
	for _, p := range os.Args[1:] {
		b, err := os.ReadFile(p)
		if err != nil {
			fmt.Printf("%s: missing\n", p)
			continue
		}
		fmt.Printf("%s: %s\n", p, strings.TrimSpace(string(b)))
	}
}
