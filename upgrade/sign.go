package upgrade

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/internal/pki"
)

// ErrUnsigned reports an order no server of the cluster signed.
var ErrUnsigned = errors.New("upgrade: order not signed by a server of the cluster")

// Sign signs an order with a server's credentials. Only a server's key
// makes an order a node obeys (Verify): every node can write every key of
// the store, and must not be able to make another run a binary.
func Sign(o api.NodeOrder, creds *pki.Credentials) (api.NodeOrder, error) {
	signer, ok := creds.Cert.PrivateKey.(crypto.Signer)
	if !ok || len(creds.Cert.Certificate) == 0 {
		return o, errors.New("upgrade: credentials cannot sign")
	}
	o.Signer, o.Signature = creds.Cert.Certificate[0], nil
	sum, err := digest(o)
	if err != nil {
		return o, err
	}
	if o.Signature, err = signer.Sign(rand.Reader, sum, crypto.SHA256); err != nil {
		return o, fmt.Errorf("upgrade: sign: %w", err)
	}
	return o, nil
}

// Verify checks that a server of the cluster (a certificate of the CA in
// roots, with the server role) signed the order as it is.
func Verify(o api.NodeOrder, roots *x509.CertPool) error {
	cert, err := x509.ParseCertificate(o.Signer)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnsigned, err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return fmt.Errorf("%w: %v", ErrUnsigned, err)
	}
	if !slices.Contains(cert.Subject.OrganizationalUnit, pki.RoleServer) {
		return fmt.Errorf("%w: signed by %q, a %v", ErrUnsigned, cert.Subject.CommonName, cert.Subject.OrganizationalUnit)
	}
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok {
		return fmt.Errorf("%w: not an ECDSA key", ErrUnsigned)
	}
	sig := o.Signature
	o.Signature = nil
	sum, err := digest(o)
	if err != nil {
		return err
	}
	if !ecdsa.VerifyASN1(pub, sum, sig) {
		return fmt.Errorf("%w: bad signature", ErrUnsigned)
	}
	return nil
}

func digest(o api.NodeOrder) ([]byte, error) {
	b, err := json.Marshal(o)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(b)
	return sum[:], nil
}
