//go:build !linux

package artifact

import "errors"

var errNoOverlay = errors.New("artifact: image layers need Linux")

func whiteout(string) error  { return errNoOverlay }
func setOpaque(string) error { return errNoOverlay }
