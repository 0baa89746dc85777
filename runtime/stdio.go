package runtime

import (
	"io"
	"os"
	"sync"
	"time"
)

// stdio gives a child process *os.File descriptors rather than letting
// os/exec make pipes: runc create passes its stdio on to the container and
// exits long before the container does, so whoever holds the write ends must
// be the container alone, and waiting for a process must not wait for the
// copying of its output.
type stdio struct {
	files   [3]*os.File // the child's stdin, stdout, stderr
	ours    []*os.File  // child ends we opened, closed once the child has them
	readers []*os.File  // our read ends of output pipes, closed after draining
	copies  sync.WaitGroup
}

func newStdio(s IO) (*stdio, error) {
	st := &stdio{}
	var err error
	if st.files[0], err = st.input(s.Stdin); err != nil {
		st.close()
		return nil, err
	}
	if st.files[1], err = st.output(s.Stdout); err != nil {
		st.close()
		return nil, err
	}
	if sameWriter(s.Stdout, s.Stderr) {
		// One pipe for both, as os/exec does, so that a writer that is not
		// safe for concurrent use is only ever written by one goroutine.
		st.files[2] = st.files[1]
	} else if st.files[2], err = st.output(s.Stderr); err != nil {
		st.close()
		return nil, err
	}
	return st, nil
}

func sameWriter(a, b io.Writer) (same bool) {
	if a == nil || b == nil {
		return false
	}
	defer func() { _ = recover() }() // writers of incomparable types are never the same
	return a == b
}

func (st *stdio) input(r io.Reader) (*os.File, error) {
	switch r := r.(type) {
	case nil:
		f, err := os.Open(os.DevNull)
		if err == nil {
			st.ours = append(st.ours, f)
		}
		return f, err
	case *os.File:
		return r, nil
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	st.ours = append(st.ours, pr)
	// Not waited for: the reader may never return, and once the child is
	// gone the next write fails with EPIPE and ends the copy.
	go func() {
		_, _ = io.Copy(pw, r)
		pw.Close()
	}()
	return pr, nil
}

func (st *stdio) output(w io.Writer) (*os.File, error) {
	switch w := w.(type) {
	case nil:
		f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		if err == nil {
			st.ours = append(st.ours, f)
		}
		return f, err
	case *os.File:
		return w, nil
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	st.ours = append(st.ours, pw)
	st.readers = append(st.readers, pr)
	st.copies.Add(1)
	go func() {
		defer st.copies.Done()
		_, _ = io.Copy(w, pr)
	}()
	return pw, nil
}

// handedOver closes our copies of the child's ends, so that output pipes
// reach EOF when the last process holding them exits.
func (st *stdio) handedOver() {
	for _, f := range st.ours {
		f.Close()
	}
	st.ours = nil
}

// drain waits up to timeout for the output to be copied, then closes the
// read ends, which ends copies still waiting for a writer that escaped, and
// waits for the copies to stop: once Run returns, nothing writes to the
// caller's writers any more.
func (st *stdio) drain(timeout time.Duration) {
	done := make(chan struct{})
	go func() { st.copies.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
	}
	for _, f := range st.readers {
		f.Close()
	}
	st.readers = nil
	<-done
}

func (st *stdio) close() {
	st.handedOver()
	st.drain(0)
}

// console copies between a pty master and the caller's stdio when the
// caller did not ask for the master itself. wait blocks until the output is
// copied (the master reads EIO once every process holding the slave has
// exited) and closes the master.
func console(master *os.File, s IO) (wait func(timeout time.Duration)) {
	if s.Stdin != nil {
		go func() { _, _ = io.Copy(master, s.Stdin) }()
	}
	out := s.Stdout
	if out == nil {
		out = io.Discard
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(out, master) // ends with EIO, which is not an error here
	}()
	return func(timeout time.Duration) {
		select {
		case <-done:
		case <-time.After(timeout):
		}
		master.Close()
		<-done
	}
}
