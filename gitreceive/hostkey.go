package gitreceive

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"golang.org/x/crypto/ssh"

	"github.com/pierpaas/pier/internal/pki"
)

// LoadHostKey reads the SSH host key in path (OpenSSH PEM), making an
// ed25519 one (0600) the first time. The key must outlive restarts:
// pushers' known_hosts remember it, and a new one makes ssh refuse to
// connect. Servers behind one name should share it.
func LoadHostKey(path string) (ssh.Signer, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		block, err := ssh.MarshalPrivateKey(priv, "pier git host key")
		if err != nil {
			return nil, err
		}
		b = pem.EncodeToMemory(block)
		if err := pki.WriteFile(path, b); err != nil {
			return nil, fmt.Errorf("gitreceive: write the host key: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("gitreceive: read the host key: %w", err)
	}
	s, err := ssh.ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("gitreceive: host key %s: %w", path, err)
	}
	return s, nil
}
