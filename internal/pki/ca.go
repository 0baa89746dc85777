package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Validity periods. Certificates are long-lived because rotation is not
// automated yet; the CA outlives every leaf it signs.
const (
	caValidity   = 10 * 365 * 24 * time.Hour
	leafValidity = 5 * 365 * 24 * time.Hour
)

// File names inside a credentials directory.
const (
	CACertFile = "ca.crt"
	CAKeyFile  = "ca.key"
	CertFile   = "node.crt"
	KeyFile    = "node.key"
)

// ErrNoCA means a directory holds no CA yet.
var ErrNoCA = errors.New("pki: no certificate authority")

// CA is the cluster's certificate authority.
type CA struct {
	Cert    *x509.Certificate
	CertPEM []byte
	key     crypto.Signer
}

// NewCA creates a fresh CA for the cluster named name.
func NewCA(name string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "pier cluster CA " + name, Organization: []string{"pier"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, CertPEM: pemEncode("CERTIFICATE", der), key: key}, nil
}

// LoadCA reads a CA, with its private key, from dir.
func LoadCA(dir string) (*CA, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, CACertFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoCA
	}
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoCA
	}
	if err != nil {
		return nil, err
	}
	cert, err := ParseCertPEM(certPEM)
	if err != nil {
		return nil, err
	}
	key, err := parseKeyPEM(keyPEM)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, CertPEM: certPEM, key: key}, nil
}

// Save writes the CA certificate and key into dir.
func (ca *CA) Save(dir string) error {
	der, err := x509.MarshalPKCS8PrivateKey(ca.key)
	if err != nil {
		return err
	}
	if err := WriteFile(filepath.Join(dir, CACertFile), ca.CertPEM); err != nil {
		return err
	}
	return WriteFile(filepath.Join(dir, CAKeyFile), pemEncode("PRIVATE KEY", der))
}

// Fingerprint is the hex SHA-256 of the CA certificate, as carried by join tokens.
func (ca *CA) Fingerprint() string { return Fingerprint(ca.Cert) }

// Fingerprint returns the hex SHA-256 of a certificate's DER bytes.
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// Request describes the certificate a node asks for.
type Request struct {
	// CommonName names the node, e.g. "server-1" or "host-abc".
	CommonName string
	// Role is recorded as the certificate's organizational unit
	// ("server", "host", "client") so endpoints can tell nodes apart.
	Role string
	// DNSNames and IPs become subject alternative names; servers need
	// them because their certificate also serves etcd and the API.
	DNSNames []string
	IPs      []net.IP
}

// Sign issues a certificate for pub, valid for both serving and client use:
// etcd members use one certificate for both directions.
func (ca *CA) Sign(pub crypto.PublicKey, req Request) ([]byte, error) {
	if req.CommonName == "" {
		return nil, errors.New("pki: certificate request without a name")
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: req.CommonName, Organization: []string{"pier"}, OrganizationalUnit: []string{req.Role}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(leafValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:     req.DNSNames,
		IPAddresses:  req.IPs,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.key)
	if err != nil {
		return nil, fmt.Errorf("pki: sign: %w", err)
	}
	return pemEncode("CERTIFICATE", der), nil
}

// Issue creates a key pair and a certificate for req and writes them, with
// the CA certificate, into dir: the credentials a node needs.
func (ca *CA) Issue(dir string, req Request) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	certPEM, err := ca.Sign(key.Public(), req)
	if err != nil {
		return err
	}
	keyPEM, err := MarshalKey(key)
	if err != nil {
		return err
	}
	return SaveCredentials(dir, ca.CertPEM, certPEM, keyPEM)
}

// NewKey generates a private key for a node and returns it with its PEM form.
func NewKey() (crypto.Signer, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	pemBytes, err := MarshalKey(key)
	return key, pemBytes, err
}

// MarshalKey encodes a private key as PKCS#8 PEM.
func MarshalKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pemEncode("PRIVATE KEY", der), nil
}

// SaveCredentials writes a node's CA certificate, certificate and key into dir.
func SaveCredentials(dir string, caPEM, certPEM, keyPEM []byte) error {
	if err := WriteFile(filepath.Join(dir, CACertFile), caPEM); err != nil {
		return err
	}
	if err := WriteFile(filepath.Join(dir, CertFile), certPEM); err != nil {
		return err
	}
	return WriteFile(filepath.Join(dir, KeyFile), keyPEM)
}

// HasCredentials reports whether dir holds a node certificate and key.
func HasCredentials(dir string) bool {
	for _, f := range []string{CACertFile, CertFile, KeyFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return false
		}
	}
	return true
}

// WriteFile writes data atomically with 0600 permissions, creating dir with
// 0700: every credential pier writes goes through here.
func WriteFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// ParseCertPEM parses the first certificate in a PEM block.
func ParseCertPEM(b []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("pki: no PEM certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}

func parseKeyPEM(b []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("pki: no PEM key")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, errors.New("pki: key cannot sign")
	}
	return s, nil
}

func pemEncode(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return n
}

// KeyPEM returns the CA's private key, for handing to a joining server.
func (ca *CA) KeyPEM() ([]byte, error) { return MarshalKey(ca.key) }
