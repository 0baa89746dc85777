package pki

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
)

// ControlPlaneTransport is the HTTP transport of a job that talks to the
// controller (a build, a backup): it trusts only the cluster's CA (caPEM),
// so the job's token never goes to anyone else. With relay (the host's
// relay on the job's gateway, when the job has a network namespace of its
// own) every connection goes there instead, and the server is verified by
// its certificate alone: a chain to the CA and the server role, whatever
// address the relay reached it at.
func ControlPlaneTransport(caPEM, relay string) (*http.Transport, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(caPEM)) {
		return nil, errors.New("no PEM certificate in the cluster CA")
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if relay == "" {
		return tr, nil
	}
	d := &net.Dialer{}
	tr.Proxy = nil // the relay is the only way out; a proxy could not be reached
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return d.DialContext(ctx, network, relay)
	}
	tr.TLSClientConfig.InsecureSkipVerify = true // verified below, without the name
	tr.TLSClientConfig.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("pki: server sent no certificate")
		}
		leaf := cs.PeerCertificates[0]
		inter := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter}); err != nil {
			return err
		}
		if !slices.Contains(leaf.Subject.OrganizationalUnit, RoleServer) {
			return fmt.Errorf("pki: %s is not a server's certificate", leaf.Subject.CommonName)
		}
		return nil
	}
	return tr, nil
}
