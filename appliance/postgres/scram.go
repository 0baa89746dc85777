package postgres

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"regexp"
)

// scramIterations is PostgreSQL's default (scram_iterations).
const scramIterations = 4096

// Verifier returns the SCRAM-SHA-256 verifier of password, in the form
// PostgreSQL stores in pg_authid and accepts in place of a password
// ("If the presented password string is already in SCRAM-encrypted
// format, then it is stored as-is"): the server checks logins with it,
// and nobody learns the password from it. That is what lets a password
// reach the member through its (readable) environment without being in
// it, and keeps plain passwords out of the statements a server logs.
func Verifier(password string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	return verifier(password, salt)
}

func verifier(password string, salt []byte) (string, error) {
	salted, err := pbkdf2.Key(sha256.New, password, salt, scramIterations, sha256.Size)
	if err != nil {
		return "", err
	}
	clientKey := hmacSHA256(salted, "Client Key")
	stored := sha256.Sum256(clientKey)
	serverKey := hmacSHA256(salted, "Server Key")
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", scramIterations, b64(salt), b64(stored[:]), b64(serverKey)), nil
}

func hmacSHA256(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// verifierRE is the shape of what Verifier makes. A verifier goes into
// SQL as a literal (CREATE ROLE takes no parameters): checked against
// this first, it can hold no quote.
var verifierRE = regexp.MustCompile(`^SCRAM-SHA-256\$[0-9]+:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$`)
