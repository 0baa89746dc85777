package runtime

import (
	"context"
	"fmt"
	"log/slog"
	"syscall"
)

// Process is not written for Windows: it has no process groups to kill a
// job's children with.
type Process struct{}

var _ Runtime = (*Process)(nil)

func NewProcess(log *slog.Logger) *Process {
	if log == nil {
		log = slog.Default()
	}
	log.Warn("runtime: the process driver does not run jobs on Windows")
	return &Process{}
}

func (*Process) Name() string { return "process" }

func (*Process) Run(context.Context, Spec, IO, func(int)) (Exit, error) {
	return Exit{}, fmt.Errorf("%w: the process driver on Windows", ErrUnsupported)
}
func (*Process) Signal(string, syscall.Signal) error { return ErrUnsupported }
func (*Process) Delete(string) error                 { return nil }
func (*Process) List() ([]string, error)             { return nil, nil }
