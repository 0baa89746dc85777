package gitreceive

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/pierpaas/pier/api"
)

// handshakeTimeout bounds an SSH handshake, so a client that connects
// and says nothing does not hold a goroutine and a socket.
const handshakeTimeout = 30 * time.Second

const (
	serviceReceive = "git-receive-pack"
	serviceUpload  = "git-upload-pack"
)

// ServeSSH serves git over SSH on ln until ctx ends, then closes ln, stops
// the pushes in progress and returns nil. Any user name is accepted (as in
// git@host); the client's public key is what Auth.AuthorizeKey checks.
func (r *Receiver) ServeSSH(ctx context.Context, ln net.Listener) error {
	if r.cfg.HostKey == nil {
		return errors.New("gitreceive: ServeSSH needs a HostKey")
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel() // whatever ended the loop, the sessions end too
		wg.Wait()
	}()
	conf := &ssh.ServerConfig{
		// Public keys only: no PasswordCallback and no
		// KeyboardInteractiveCallback means no such methods are offered.
		PublicKeyCallback: func(md ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			actx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if err := r.cfg.Auth.AuthorizeKey(actx, key); err != nil {
				r.log.Debug("ssh key refused", "remote", md.RemoteAddr().String(),
					"fingerprint", ssh.FingerprintSHA256(key), "err", err)
				return nil, fmt.Errorf("gitreceive: key %s is not registered", ssh.FingerprintSHA256(key))
			}
			// The library hands back the permissions of the key that
			// actually signed, so this names the pusher.
			return &ssh.Permissions{Extensions: map[string]string{"pusher": "ssh:" + ssh.FingerprintSHA256(key)}}, nil
		},
		ServerVersion: "SSH-2.0-pier",
	}
	conf.AddHostKey(r.cfg.HostKey)

	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	delay := 5 * time.Millisecond
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("gitreceive: %w", err)
			}
			// Out of file descriptors and the like: wait, as net/http does.
			r.log.Error("ssh accept", "err", err)
			time.Sleep(delay)
			delay = min(2*delay, time.Second)
			continue
		}
		delay = 5 * time.Millisecond
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.serveSSHConn(ctx, conf, c)
		}()
	}
}

func (r *Receiver) serveSSHConn(ctx context.Context, conf *ssh.ServerConfig, nc net.Conn) {
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(handshakeTimeout))
	sc, chans, reqs, err := ssh.NewServerConn(nc, conf)
	if err != nil {
		r.log.Debug("ssh handshake", "remote", nc.RemoteAddr().String(), "err", err)
		return
	}
	nc.SetDeadline(time.Time{})
	// The connection's end (chans closes) or the server's cancels ctx,
	// which stops the git processes and the build of a push in progress.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { sc.Close() })
	defer stop()
	go ssh.DiscardRequests(reqs) // no port forwarding, no keepalive replies needed
	pusher := sc.Permissions.Extensions["pusher"]

	var wg sync.WaitGroup
	for nch := range chans {
		if nch.ChannelType() != "session" {
			nch.Reject(ssh.Prohibited, "pier only serves git over SSH")
			continue
		}
		ch, creqs, err := nch.Accept()
		if err != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.serveSession(ctx, ch, creqs, pusher)
		}()
	}
	cancel()
	wg.Wait()
}

// serveSession answers a session's requests until its exec (or shell):
// the only thing a session can do is run one git service.
func (r *Receiver) serveSession(ctx context.Context, ch ssh.Channel, reqs <-chan *ssh.Request, pusher string) {
	defer ch.Close()
	var protocol string // GIT_PROTOCOL, which git sends for protocol v2 fetches
	refuse := func(req *ssh.Request, msg string) {
		req.Reply(true, nil)
		go ssh.DiscardRequests(reqs)
		fmt.Fprintf(ch.Stderr(), "pier: %s\n", msg)
		exit(ch, 1)
	}
	for req := range reqs {
		switch req.Type {
		case "env":
			var kv struct{ Name, Value string }
			ok := ssh.Unmarshal(req.Payload, &kv) == nil && kv.Name == "GIT_PROTOCOL" && protocolRE.MatchString(kv.Value)
			if ok {
				protocol = kv.Value
			}
			req.Reply(ok, nil)
		case "exec":
			var p struct{ Command string }
			if err := ssh.Unmarshal(req.Payload, &p); err != nil {
				refuse(req, "bad exec request")
				return
			}
			req.Reply(true, nil)
			// The requests end when the client closes the channel: the
			// push ends then, even if the connection lives on (an
			// OpenSSH ControlMaster).
			sctx, cancel := context.WithCancel(ctx)
			go func() {
				ssh.DiscardRequests(reqs)
				cancel()
			}()
			exit(ch, r.execSSH(sctx, ch, p.Command, pusher, protocol))
			cancel()
			return
		case "shell":
			refuse(req, "there is no shell here; deploy with git push (git remote add pier ssh://git@HOST:PORT/APP.git)")
			return
		case "subsystem":
			refuse(req, "there are no subsystems (sftp, ...) here; only git push and git fetch")
			return
		default:
			// pty-req, x11-req, auth-agent-req@openssh.com, signals ...:
			// declined; the client may go on to an exec that works.
			req.Reply(false, nil)
		}
	}
}

// exit ends a session the way OpenSSH does: EOF, then the exit status.
func exit(ch ssh.Channel, code int) {
	ch.CloseWrite()
	ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{uint32(code)}))
}

// execSSH runs the git service a command names and returns its exit code.
func (r *Receiver) execSSH(ctx context.Context, ch ssh.Channel, command, pusher, protocol string) int {
	stderr := ch.Stderr()
	service, app, err := parseCommand(command)
	if err != nil {
		fmt.Fprintf(stderr, "pier: %v\n", err)
		return 1
	}
	id, msg := r.checkApp(ctx, app)
	if msg != "" {
		fmt.Fprintf(stderr, "pier: %s\n", msg)
		return 1
	}
	var env []string
	if protocol != "" {
		env = append(env, "GIT_PROTOCOL="+protocol)
	}
	log := r.log.With("app", app, "service", service, "pusher", pusher, "via", "ssh")
	if service == serviceUpload {
		if !r.repoExists(app) {
			fmt.Fprintf(stderr, "pier: %s has no git repository yet; git push to it first\n", app)
			return 1
		}
		return exitCode(log, runService(r.serviceCommand(ctx, service, r.repoPath(app), env), ch, ch, stderr))
	}

	unlock, err := r.lockApp(ctx, app, func() {
		fmt.Fprintf(stderr, "pier: waiting for another push to %s to finish...\n", app)
	})
	if err != nil {
		return 1
	}
	defer unlock()
	dir, err := r.ensureRepo(ctx, app, id)
	if err != nil {
		log.Error("prepare repository", "err", err)
		fmt.Fprintf(stderr, "pier: internal error preparing the repository of %s\n", app)
		return 1
	}
	penv, end, err := r.startPush(ctx, app, dir, pusher)
	if err != nil {
		return 1
	}
	defer end()
	return exitCode(log, runService(r.serviceCommand(ctx, service, dir, append(env, penv...)), ch, ch, stderr))
}

// checkApp returns app's id, or says what is wrong with pushing to or
// fetching app. A repository left by a destroyed app of that name is
// removed first.
func (r *Receiver) checkApp(ctx context.Context, app string) (id, problem string) {
	id, err := r.cfg.Auth.AppID(ctx, app)
	if err == nil {
		err = r.forgetStale(ctx, app, id)
	}
	switch {
	case err != nil:
		r.log.Error("look up app", "app", app, "err", err)
		return "", "cannot look up the app now; try again later"
	case id == "":
		return "", fmt.Sprintf("there is no app named %s (create it with: pier create %s)", app, app)
	}
	return id, ""
}

func exitCode(log interface{ Debug(string, ...any) }, err error) int {
	if err == nil {
		return 0
	}
	log.Debug("git service failed", "err", err)
	var ee interface{ ExitCode() int }
	if errors.As(err, &ee) && ee.ExitCode() > 0 {
		return ee.ExitCode()
	}
	return 1
}

// parseCommand accepts exactly what git clients send for a push or a
// fetch: `git-receive-pack 'APP.git'` or `git-upload-pack 'APP.git'`, the
// path also with a leading slash (ssh:// URLs) or without quotes, and the
// ".git" optional. Anything else is refused; nothing of it ever reaches a
// shell, and the repository's path is built from the validated name only.
func parseCommand(cmd string) (service, app string, err error) {
	bad := fmt.Errorf("only git push and git fetch are served here, not %q", truncate(cmd, 80))
	service, arg, ok := strings.Cut(cmd, " ")
	if !ok || (service != serviceReceive && service != serviceUpload) {
		return "", "", bad
	}
	if len(arg) >= 2 && arg[0] == '\'' && arg[len(arg)-1] == '\'' {
		arg = arg[1 : len(arg)-1]
	}
	arg = strings.TrimPrefix(arg, "/")
	arg = strings.TrimSuffix(arg, ".git")
	if arg == "" || strings.ContainsAny(arg, "'/ \\\"\t\n;&|$`") {
		return "", "", bad
	}
	if err := api.ValidateAppName(arg); err != nil {
		return "", "", err
	}
	return service, arg, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
