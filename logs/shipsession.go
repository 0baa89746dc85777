package logs

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/host/joblog"
)

// linesPerTurn is how many lines of one job a batch takes before the
// next job's turn: a job flooding its output gets its share of each
// batch, and the others' lines still go out with the next request.
const linesPerTurn = 64

// session is the state of shipping to one aggregator.
type session struct {
	s       *Shipper
	cursors map[string]uint64 // what the aggregator held when we connected
	readers map[string]*jobReader
	order   []string          // reader ids, for round-robin turns
	turn    int               // where the next batch starts
	done    map[string]bool   // jobs fully shipped this session
	sent    map[string]uint64 // newest line taken into a batch, per job
	wake    chan struct{}
	wg      sync.WaitGroup
}

// jobReader follows one job's files into a bounded buffer.
type jobReader struct {
	job    ShipJob
	cancel context.CancelFunc // stop reading altogether
	finish context.CancelFunc // the job ended: read what is left, then end

	mu        sync.Mutex
	pending   []api.LogLine
	bytes     int
	finishing bool
	ended     bool          // the reader goroutine returned
	space     chan struct{} // signalled when lines are taken
}

func (ss *session) wakeup() {
	select {
	case ss.wake <- struct{}{}:
	default:
	}
}

// refresh starts readers for new jobs, stops those of jobs gone, and
// tells readers of ended jobs to finish.
func (ss *session) refresh(ctx context.Context) {
	cfg := &ss.s.cfg
	listed := map[string]bool{}
	for _, j := range cfg.Jobs() {
		if j.ID == "" || j.App == "" {
			continue
		}
		listed[j.ID] = true
		if ss.readers[j.ID] != nil || ss.done[j.ID] {
			continue
		}
		ss.start(ctx, j)
	}
	for id, jr := range ss.readers {
		if !listed[id] {
			jr.cancel()
			ss.remove(id)
			continue
		}
		jr.mu.Lock()
		finishing := jr.finishing
		jr.mu.Unlock()
		if !finishing && cfg.Done(id) {
			jr.mu.Lock()
			jr.finishing = true
			jr.mu.Unlock()
			jr.finish()
		}
	}
	for id := range ss.done {
		if !listed[id] {
			delete(ss.done, id)
			delete(ss.sent, id)
		}
	}
}

func (ss *session) remove(id string) {
	delete(ss.readers, id)
	for i, o := range ss.order {
		if o == id {
			ss.order = append(ss.order[:i], ss.order[i+1:]...)
			break
		}
	}
}

// start reads a job from the line after the newest the aggregator has.
func (ss *session) start(ctx context.Context, j ShipJob) {
	from := max(ss.cursors[j.ID], ss.sent[j.ID])
	if from > 0 {
		from++ // else 0: the oldest line kept
	}
	rctx, cancel := context.WithCancel(ctx)
	fctx, finish := context.WithCancel(rctx)
	jr := &jobReader{job: j, cancel: cancel, finish: finish, space: make(chan struct{}, 1)}
	ss.readers[j.ID] = jr
	ss.order = append(ss.order, j.ID)
	ss.wg.Add(1)
	go func() {
		defer ss.wg.Done()
		jr.run(rctx, fctx, from, ss.s.cfg.MaxPendingBytes, ss.wakeup)
	}()
}

// run follows the files until finish (then reads them to the end) or
// cancel.
func (jr *jobReader) run(ctx, followCtx context.Context, from uint64, maxPending int, wake func()) {
	defer func() {
		jr.mu.Lock()
		jr.ended = true
		jr.mu.Unlock()
		wake()
	}()
	push := func(l joblog.Line) error {
		size := lineOverhead + len(l.Text)
		for {
			jr.mu.Lock()
			if jr.bytes == 0 || jr.bytes+size <= maxPending {
				jr.pending = append(jr.pending, api.LogLine{Seq: l.Seq, Time: l.Time, Stream: l.Stream, Text: l.Text, Gap: l.Gap})
				jr.bytes += size
				jr.mu.Unlock()
				wake()
				return nil
			}
			jr.mu.Unlock()
			// Full: the files hold the rest. Waiting here holds back only
			// this reader, never the job.
			select {
			case <-jr.space:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	for {
		next, err := joblog.Follow(followCtx, jr.job.Dir, from, push)
		from = next
		if ctx.Err() != nil {
			return
		}
		if followCtx.Err() != nil {
			// The job ended, so its writer is closed: what the files
			// hold now is all there is.
			joblog.Read(jr.job.Dir, from, push)
			return
		}
		if err != nil && !errors.Is(err, context.Canceled) {
			select { // a read error (disk trouble): try again shortly
			case <-ctx.Done():
				return
			case <-followCtx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

// collect takes lines from the readers, a few per job in turn, into one
// batch, and returns it with the lines the batch says were lost.
func (ss *session) collect() (api.LogBatch, uint64) {
	cfg := &ss.s.cfg
	b := api.LogBatch{Host: cfg.Host}
	idx := map[string]int{}
	var lost uint64
	lines, size := 0, 0
	n := len(ss.order)
	if n == 0 {
		return b, 0
	}
	ss.turn = (ss.turn + 1) % n
	for progress := true; progress && lines < cfg.MaxBatchLines && size < cfg.MaxBatchBytes; {
		progress = false
		for k := 0; k < n && lines < cfg.MaxBatchLines && size < cfg.MaxBatchBytes; k++ {
			id := ss.order[(ss.turn+k)%n]
			jr := ss.readers[id]
			jr.mu.Lock()
			take := min(len(jr.pending), linesPerTurn, cfg.MaxBatchLines-lines)
			if take == 0 {
				jr.mu.Unlock()
				continue
			}
			i, ok := idx[id]
			if !ok {
				i = len(b.Jobs)
				idx[id] = i
				b.Jobs = append(b.Jobs, api.JobLogLines{Job: id, App: jr.job.App, Release: jr.job.Release, ProcessType: jr.job.ProcessType})
			}
			for _, l := range jr.pending[:take] {
				lost += l.Gap
				sz := lineOverhead + len(l.Text)
				size += sz
				jr.bytes -= sz
			}
			b.Jobs[i].Lines = append(b.Jobs[i].Lines, jr.pending[:take]...)
			ss.sent[id] = jr.pending[take-1].Seq
			rest := copy(jr.pending, jr.pending[take:])
			clear(jr.pending[rest:])
			jr.pending = jr.pending[:rest]
			jr.mu.Unlock()
			select {
			case jr.space <- struct{}{}:
			default:
			}
			lines += take
			progress = true
		}
	}
	return b, lost
}

// reap forgets readers that ended with nothing left to send: their jobs
// are shipped.
func (ss *session) reap() {
	for id, jr := range ss.readers {
		jr.mu.Lock()
		over := jr.ended && len(jr.pending) == 0
		jr.mu.Unlock()
		if over {
			jr.cancel()
			ss.remove(id)
			ss.done[id] = true
		}
	}
}

// stop ends every reader and waits for them.
func (ss *session) stop() {
	for _, jr := range ss.readers {
		jr.cancel()
	}
	ss.wg.Wait()
}
