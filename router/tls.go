package router

import (
	"crypto/sha256"
	"crypto/tls"
	"slices"
)

// ALPNACME is the protocol an ACME server offers, alone, to validate a
// TLS-ALPN-01 challenge (RFC 8737). Such handshakes go to
// Config.GetCertificate first, since they need the challenge certificate,
// never the route's.
const ALPNACME = "acme-tls/1"

// certSet is the certificates of one table, parsed when the table was
// installed so that a handshake only looks one up.
type certSet struct {
	table *Table
	byID  map[string]*certEntry // by route ID
}

type certEntry struct {
	sum  [sha256.Size]byte // of the route's PEM, to reuse the parse
	cert *tls.Certificate
}

// updateCerts parses the certificates of t's routes. A route whose PEM is
// unchanged since the last table keeps its parsed certificate, so a
// rebuild of a table with many routes parses only what changed.
func (p *Proxy) updateCerts(t *Table) {
	prev := p.certs.Load()
	next := &certSet{table: t, byID: make(map[string]*certEntry)}
	for _, r := range t.Routes() {
		if r.TLS == nil {
			continue
		}
		h := sha256.New()
		h.Write([]byte(r.TLS.CertPEM))
		h.Write([]byte{0})
		h.Write([]byte(r.TLS.KeyPEM))
		var sum [sha256.Size]byte
		h.Sum(sum[:0])
		if prev != nil {
			if e := prev.byID[r.ID]; e != nil && e.sum == sum {
				next.byID[r.ID] = e
				continue
			}
		}
		// NewTable validated the pair, so this fails only if the
		// validation and this parse ever disagree; the route then
		// answers no handshake rather than a wrong one.
		cert, err := tls.X509KeyPair([]byte(r.TLS.CertPEM), []byte(r.TLS.KeyPEM))
		p.certParses.Add(1)
		if err != nil {
			continue
		}
		next.byID[r.ID] = &certEntry{sum: sum, cert: &cert}
	}
	p.certs.Store(next)
}

// GetCertificate picks the certificate for a TLS handshake by its server
// name (SNI): the route's own from the current table (Table.LookupTLS),
// else Config.GetCertificate's (ACME). For a name with neither it returns
// (nil, nil), which a config without static certificates (TLSConfig's)
// turns into the "unrecognized_name" alert: answering with another
// domain's certificate would only trade a clear error for a confusing
// one.
func (p *Proxy) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	hook := p.cfg.GetCertificate
	if hook != nil && slices.Contains(hello.SupportedProtos, ALPNACME) {
		return hook(hello)
	}
	if cs := p.certs.Load(); cs != nil {
		if r, ok := cs.table.LookupTLS(hello.ServerName); ok && r.TLS != nil {
			if e := cs.byID[r.ID]; e != nil {
				return e.cert, nil
			}
		}
	}
	if hook != nil {
		return hook(hello)
	}
	return nil, nil
}

// TLSConfig is the configuration of the router's HTTPS listener:
// certificates by SNI from GetCertificate, HTTP/2 and HTTP/1.1 by ALPN,
// and the ACME challenge protocol when a GetCertificate hook can answer
// it. It has no static certificates, so that a name GetCertificate has
// nothing for fails the handshake. Each call returns a new config.
func (p *Proxy) TLSConfig() *tls.Config {
	protos := []string{"h2", "http/1.1"}
	if p.cfg.GetCertificate != nil {
		// Last: ALPN takes the server's first protocol the client
		// offers, and only an ACME validator offers this one.
		protos = append(protos, ALPNACME)
	}
	return &tls.Config{
		GetCertificate: p.GetCertificate,
		NextProtos:     protos,
		MinVersion:     tls.VersionTLS12,
	}
}
