//go:build !linux

package runtime

import (
	"context"
	"fmt"
	"syscall"
	"time"
)

// Runc needs Linux; elsewhere it cannot be constructed.
type Runc struct{}

var _ Runtime = (*Runc)(nil)

func NewRunc(RuncOptions) (*Runc, error) {
	return nil, fmt.Errorf("%w: the runc driver needs Linux", ErrUnsupported)
}

func (*Runc) Name() string { return "runc" }

func (*Runc) Run(context.Context, Spec, IO, func(int)) (Exit, error) { return Exit{}, ErrUnsupported }
func (*Runc) Signal(string, syscall.Signal) error                    { return ErrUnsupported }
func (*Runc) Delete(string) error                                    { return ErrUnsupported }
func (*Runc) List() ([]string, error)                                { return nil, ErrUnsupported }

func (*Runc) BareRun(context.Context, Spec, int) ([]time.Duration, error) {
	return nil, ErrUnsupported
}
