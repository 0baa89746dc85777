package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Credentials are a node's TLS material loaded from its directory.
type Credentials struct {
	Dir  string
	Pool *x509.CertPool
	Cert tls.Certificate
}

// LoadCredentials reads the CA certificate, certificate and key from dir.
func LoadCredentials(dir string) (*Credentials, error) {
	caPEM, err := os.ReadFile(filepath.Join(dir, CACertFile))
	if err != nil {
		return nil, fmt.Errorf("pki: read CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("pki: CA file holds no certificate")
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile))
	if err != nil {
		return nil, fmt.Errorf("pki: load key pair: %w", err)
	}
	// Send the CA along with the leaf so nodes holding only a join token
	// can check the CA against the token's fingerprint.
	if ca, err := ParseCertPEM(caPEM); err == nil {
		cert.Certificate = append(cert.Certificate, ca.Raw)
	}
	return &Credentials{Dir: dir, Pool: pool, Cert: cert}, nil
}

// CertFile, KeyFile and CAFile give the paths, for libraries (etcd's embed)
// that want files rather than parsed material.
func (c *Credentials) CertPath() string { return filepath.Join(c.Dir, CertFile) }
func (c *Credentials) KeyPath() string  { return filepath.Join(c.Dir, KeyFile) }
func (c *Credentials) CAPath() string   { return filepath.Join(c.Dir, CACertFile) }

// ClientConfig is a TLS config for connecting to cluster endpoints with this
// node's certificate.
func (c *Credentials) ClientConfig() *tls.Config {
	return &tls.Config{
		RootCAs:      c.Pool,
		Certificates: []tls.Certificate{c.Cert},
		MinVersion:   tls.VersionTLS12,
	}
}

// ServerConfig is a TLS config for serving cluster endpoints. Client
// certificates are requested and verified when given, but not required:
// the HTTP layer decides per endpoint (health checks and join need none).
func (c *Credentials) ServerConfig() *tls.Config {
	return &tls.Config{
		ClientCAs:    c.Pool,
		Certificates: []tls.Certificate{c.Cert},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		MinVersion:   tls.VersionTLS12,
	}
}

// PinnedConfig is a TLS config for a node that has only a join token: it
// accepts the server's certificate only if its chain ends in the CA whose
// fingerprint the token carries.
func PinnedConfig(fingerprint string) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // verified below against the pinned CA
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("pki: server sent no certificate")
			}
			var ca *x509.Certificate
			for _, c := range cs.PeerCertificates {
				if Fingerprint(c) == fingerprint {
					ca = c
				}
			}
			if ca == nil {
				return fmt.Errorf("%w: server's CA does not match the token's fingerprint", ErrBadToken)
			}
			pool := x509.NewCertPool()
			pool.AddCert(ca)
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: pool})
			return err
		},
	}
}

// WithCA returns a copy of the credentials that trusts the CA in caFile
// instead, for an external etcd whose server certificate another CA signed.
func (c *Credentials) WithCA(caFile string) (*Credentials, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("pki: %s holds no certificate", caFile)
	}
	cp := *c
	cp.Pool = pool
	return &cp, nil
}
