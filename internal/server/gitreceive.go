package server

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"path/filepath"

	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/crypto/ssh"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/controller"
	"github.com/pierpaas/pier/gitreceive"
	"github.com/pierpaas/pier/store"
)

// startGit starts the git receiver: over HTTPS it is mounted on the API
// listener at /git/ (by serveAPI), over SSH it listens on GitSSHPort.
func (s *Server) startGit(ctx, runCtx context.Context) error {
	hostKey, err := sharedHostKey(ctx, s.Client)
	if err != nil {
		return err
	}
	s.Git, err = gitreceive.New(gitreceive.Config{
		RepoDir: filepath.Join(s.cfg.DataDir, "git"), HostKey: hostKey,
		Builder: gitBuilder{s.Controller}, Auth: gitAuth{s.Controller}, Log: s.cfg.Log,
	})
	if err != nil {
		return err
	}
	info := api.GitInfo{HostKey: string(ssh.MarshalAuthorizedKey(hostKey.PublicKey()))}
	if s.cfg.GitSSHPort > 0 {
		ln, err := net.Listen("tcp", s.cfg.addr(s.cfg.GitSSHPort))
		if err != nil {
			return fmt.Errorf("server: git SSH listener: %w", err)
		}
		info.SSHAddr = ln.Addr().String()
		go s.Git.ServeSSH(runCtx, ln)
	}
	s.Controller.Git = info
	return nil
}

// sharedHostKey is the git receivers' SSH host key, the same on every
// server (pushers' known_hosts remember one key for the cluster): the
// first server to need it makes it and stores it.
func sharedHostKey(ctx context.Context, kv clientv3.KV) (ssh.Signer, error) {
	pemKey, err := store.GetOrCreate(ctx, kv, store.GitHostKey, func() (string, error) {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return "", err
		}
		block, err := ssh.MarshalPrivateKey(priv, "pier git host key")
		if err != nil {
			return "", err
		}
		return string(pem.EncodeToMemory(block)), nil
	})
	if err != nil {
		return nil, err
	}
	return ssh.ParsePrivateKey([]byte(pemKey))
}

// gitBuilder builds pushes with the controller.
type gitBuilder struct{ c *controller.Controller }

func (g gitBuilder) Build(ctx context.Context, req gitreceive.BuildRequest, out io.Writer) error {
	_, _, err := g.c.Build(ctx, req.App, req.Commit, req.Source, out)
	return err
}

// gitAuth lets registered SSH keys and API keys push to existing apps.
type gitAuth struct{ c *controller.Controller }

func (g gitAuth) AuthorizeKey(ctx context.Context, key ssh.PublicKey) error {
	return g.c.AuthorizeSSHKey(ctx, key)
}

func (g gitAuth) AuthorizeAPIKey(ctx context.Context, secret string) error {
	return g.c.AuthorizeAPIKey(ctx, secret)
}

func (g gitAuth) AppID(ctx context.Context, app string) (string, error) { return g.c.AppID(ctx, app) }
