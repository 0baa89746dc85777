package gitreceive

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// ErrPushRejected is what RunHook returns when it refused a push or the
// build failed; it has already told the pusher why.
var ErrPushRejected = errors.New("gitreceive: push rejected")

// zeroID is git's name for "no object": an old value of a new branch, or
// the new value of a deleted one.
const zeroID = "0000000000000000000000000000000000000000"

// buildRefs are the branches a push may build (Heroku's rule).
var buildRefs = map[string]bool{"refs/heads/main": true, "refs/heads/master": true}

// RunHook is the body of the hidden `pier git-hook` command, which git
// runs as a repository's pre-receive hook. It reads the ref updates on
// stdin, refuses the ones pier cannot build, archives the pushed commit,
// and hands it to the Receiver that started this push (found through
// env), copying the build's output to stderr as it comes: git shows the
// pusher every line as "remote: ...". It explains every refusal on stderr
// itself and then returns ErrPushRejected; git then leaves the branch
// where it was.
func RunHook(ctx context.Context, stdin io.Reader, stderr io.Writer, env func(string) string) error {
	reject := func(format string, args ...any) error {
		fmt.Fprintf(stderr, "\n !     "+format+"\n\n", args...)
		return ErrPushRejected
	}
	sock, token := env(envSocket), env(envToken)
	if sock == "" || token == "" {
		return reject("pier git-hook is run by git during a push to pier, not by hand")
	}
	git := env(envGit)
	if git == "" {
		git = "git"
	}

	var ups [][3]string
	sc := bufio.NewScanner(stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 {
			return reject("unexpected pre-receive input %q", sc.Text())
		}
		ups = append(ups, [3]string{f[0], f[1], f[2]})
	}
	if err := sc.Err(); err != nil {
		return reject("read the pushed refs: %v", err)
	}
	switch {
	case len(ups) == 0:
		return nil
	case len(ups) > 1:
		return reject("push one branch at a time: git push pier main")
	}
	old, commit, ref := ups[0][0], ups[0][1], ups[0][2]
	if !buildRefs[ref] {
		return reject("pier builds only the main or master branch, not %s.\n !     Push another branch with: git push pier BRANCH:main", ref)
	}
	if commit == zeroID {
		return reject("%s cannot be deleted", ref)
	}
	// Checked here rather than left to git: a stale push would otherwise
	// build and release, and only then fail to move the branch. The
	// Receiver holds the app's push lock, so the branch cannot move
	// between this check and git's update.
	cur, err := exec.CommandContext(ctx, git, "rev-parse", "-q", "--verify", ref).Output()
	if s := strings.TrimSpace(string(cur)); (err != nil && old != zeroID) || (err == nil && s != old) {
		return reject("%s changed since your push began (another push got there first).\n !     Fetch, merge and push again.", ref)
	}
	if t, err := exec.CommandContext(ctx, git, "cat-file", "-t", commit).Output(); err != nil || strings.TrimSpace(string(t)) != "commit" {
		return reject("%s must point to a commit", ref)
	}

	conn, err := net.Dial("unix", sock)
	if err != nil {
		return reject("cannot reach pier's git receiver: %v", err)
	}
	stopClose := context.AfterFunc(ctx, func() { conn.Close() })
	defer stopClose()
	hdr, _ := json.Marshal(hookHeader{Token: token, Ref: ref, Old: old, Commit: commit})
	if err := writeFrame(conn, frameHeader, hdr); err != nil {
		return reject("cannot reach pier's git receiver: %v", err)
	}

	// The archive goes up while the output comes down: the Receiver may
	// answer (a refusal, a build that fails early) before it has read it all.
	actx, stopArchive := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sendArchive(actx, git, commit, conn)
	}()
	defer func() {
		// In this order: an upload blocked on a Receiver that no longer
		// reads ends when the connection closes.
		stopArchive()
		conn.Close()
		wg.Wait()
	}()

	br := bufio.NewReader(conn)
	var buf []byte
	for {
		typ, p, err := readFrame(br, &buf)
		if err != nil {
			return reject("lost the connection to pier's git receiver: %v", err)
		}
		switch typ {
		case frameOutput:
			stderr.Write(p)
		case frameResult:
			var res hookResult
			if err := json.Unmarshal(p, &res); err != nil {
				return reject("bad answer from pier's git receiver: %v", err)
			}
			if !res.OK {
				return reject("Push rejected: %s", res.Error)
			}
			return nil
		default:
			return reject("bad answer from pier's git receiver (frame %q)", typ)
		}
	}
}

// sendArchive streams `git archive` of commit to the Receiver and says
// whether it is complete. git finds the pushed objects, which are still
// in quarantine, through the environment receive-pack gave the hook.
func sendArchive(ctx context.Context, git, commit string, conn net.Conn) {
	cmd := exec.CommandContext(ctx, git, "archive", "--format=tar.gz", commit)
	var errBuf strings.Builder
	cmd.Stderr = &limitedWriter{w: &errBuf, n: 4096}
	out, err := cmd.StdoutPipe()
	if err == nil {
		err = cmd.Start()
	}
	if err != nil {
		writeFrame(conn, frameAbort, []byte(err.Error()))
		return
	}
	fw := &frameWriter{w: conn, typ: frameData}
	_, cerr := io.CopyBuffer(fw, out, make([]byte, 32<<10))
	werr := cmd.Wait()
	switch {
	case cerr != nil:
		// The Receiver stopped reading: it has answered already.
	case werr != nil:
		fw.finish(frameAbort, []byte(fmt.Sprintf("git archive: %v: %s", werr, strings.TrimSpace(errBuf.String()))))
	default:
		fw.finish(frameEnd, nil)
	}
}

type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		c := min(len(p), l.n)
		l.w.Write(p[:c])
		l.n -= c
	}
	return len(p), nil
}

// acceptHooks serves hook connections until Close.
func (r *Receiver) acceptHooks(ln net.Listener) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			select {
			case <-r.ctx.Done():
				return
			default:
			}
			r.log.Error("hook socket", "err", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.serveHook(c)
		}()
	}
}

// serveHook runs one build for one hook: it checks the token, gives the
// archive to the Builder as it arrives, sends the output back as it is
// made, then the result.
func (r *Receiver) serveHook(conn net.Conn) {
	defer conn.Close()
	out := &frameWriter{w: conn, typ: frameOutput}
	fail := func(msg string) {
		b, _ := json.Marshal(hookResult{Error: msg})
		out.finish(frameResult, b)
	}
	br := bufio.NewReader(conn)
	var buf []byte
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	typ, p, err := readFrame(br, &buf)
	var h hookHeader
	if err != nil || typ != frameHeader || json.Unmarshal(p, &h) != nil {
		fail("bad request")
		return
	}
	conn.SetReadDeadline(time.Time{})
	ps := r.claim(h.Token)
	if ps == nil {
		fail("this push is unknown to pier's git receiver (or its hook already ran)")
		return
	}
	ctx, cancel := context.WithCancel(ps.ctx)
	defer cancel()
	defer context.AfterFunc(r.ctx, cancel)()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	// A pump reads the hook's frames for the whole build: the archive into
	// a pipe for the Builder, then nothing; when the hook goes away (its
	// pusher did), the read fails and the build is cancelled.
	pr, pw := io.Pipe()
	go func() {
		defer cancel()
		var buf []byte
		for {
			typ, p, err := readFrame(br, &buf)
			switch {
			case err != nil:
				pw.CloseWithError(errors.New("gitreceive: the source archive was cut short"))
				return
			case typ == frameData:
				pw.Write(p) // fails once the Builder stopped reading; keep draining
			case typ == frameEnd:
				pw.Close()
			case typ == frameAbort:
				pw.CloseWithError(fmt.Errorf("gitreceive: %s", p))
			default:
				pw.CloseWithError(fmt.Errorf("gitreceive: unexpected frame %q from the hook", typ))
				return
			}
		}
	}()

	req := BuildRequest{App: ps.app, Commit: h.Commit, Ref: h.Ref, Pusher: ps.pusher, Source: pr}
	log := r.log.With("app", req.App, "commit", req.Commit, "ref", req.Ref, "pusher", req.Pusher)
	log.Info("build started")
	start := time.Now()
	err = r.cfg.Builder.Build(ctx, req, out)
	pr.Close()
	if err != nil {
		log.Info("build failed", "err", err, "duration", time.Since(start))
		fail(err.Error())
		return
	}
	log.Info("build succeeded", "duration", time.Since(start))
	// HEAD follows the branch that was deployed, so a clone checks out
	// what runs (main, or master for an app that pushes master).
	if out, err := r.command(ctx, nil, "--git-dir", ps.dir, "symbolic-ref", "HEAD", req.Ref).CombinedOutput(); err != nil {
		log.Warn("point HEAD at the pushed branch", "err", err, "output", bytesTrim(out))
	}
	b, _ := json.Marshal(hookResult{OK: true})
	out.finish(frameResult, b)
}
