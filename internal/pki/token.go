package pki

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

const tokenPrefix = "PIER1"

// Roles a join token can grant. A server token also hands out the CA key,
// so it is kept apart from the host token that every worker machine holds
// (Docker Swarm's manager and worker tokens).
const (
	RoleServer = "server"
	RoleHost   = "host"
)

// ErrBadToken is returned for a token that is malformed or does not match.
var ErrBadToken = errors.New("pki: invalid join token")

// Token is a join token: the CA fingerprint lets a joining node verify the
// server; the secret lets the server verify the node.
type Token struct {
	CAFingerprint string
	Secret        string
}

// String renders the token as PIER1-<fingerprint>-<secret>.
func (t Token) String() string {
	return tokenPrefix + "-" + t.CAFingerprint + "-" + t.Secret
}

// ParseToken parses a token written by String.
func ParseToken(s string) (Token, error) {
	parts := strings.Split(strings.TrimSpace(s), "-")
	if len(parts) != 3 || parts[0] != tokenPrefix || !isHex(parts[1], 64) || !isHex(parts[2], 32) {
		return Token{}, fmt.Errorf("%w: expected %s-<64 hex>-<32 hex>", ErrBadToken, tokenPrefix)
	}
	return Token{CAFingerprint: parts[1], Secret: parts[2]}, nil
}

// CheckSecret compares a presented secret with the cluster's in constant time.
func (t Token) CheckSecret(secret string) bool {
	return subtle.ConstantTimeCompare([]byte(t.Secret), []byte(secret)) == 1
}

// LoadOrCreateToken returns the cluster's join token for role, creating its
// secret in dir on first use.
func LoadOrCreateToken(dir string, ca *CA, role string) (Token, error) {
	path, err := secretPath(dir, role)
	if err != nil {
		return Token{}, err
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		buf := make([]byte, 16)
		if _, err := rand.Read(buf); err != nil {
			return Token{}, err
		}
		b = []byte(hex.EncodeToString(buf))
		if err := WriteFile(path, b); err != nil {
			return Token{}, err
		}
	} else if err != nil {
		return Token{}, err
	}
	secret := strings.TrimSpace(string(b))
	if !isHex(secret, 32) {
		return Token{}, fmt.Errorf("pki: corrupt join secret in %s", path)
	}
	return Token{CAFingerprint: ca.Fingerprint(), Secret: secret}, nil
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// SaveSecret stores the join secret for role, as received from the server
// that admitted this one.
func SaveSecret(dir, role, secret string) error {
	path, err := secretPath(dir, role)
	if err != nil {
		return err
	}
	if !isHex(secret, 32) {
		return fmt.Errorf("%w: malformed secret", ErrBadToken)
	}
	return WriteFile(path, []byte(secret))
}

func secretPath(dir, role string) (string, error) {
	if role != RoleServer && role != RoleHost {
		return "", fmt.Errorf("pki: unknown role %q", role)
	}
	return filepath.Join(dir, "join-secret-"+role), nil
}
