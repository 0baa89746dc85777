package join

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"

	"github.com/pierpaas/pier/internal/pki"
)

// Membership is what admitting a server needs of etcd.
type Membership interface {
	// AddLearner adds (or finds, for a retried join) a learner with the
	// given peer URL and returns the initial-cluster string for it.
	AddLearner(ctx context.Context, name, peerURL string) (initialCluster string, err error)
	// ClientEndpoints lists every voting member's client URL.
	ClientEndpoints(ctx context.Context) ([]string, error)
}

// Handler serves the join endpoint on a server.
type Handler struct {
	CA          *pki.CA
	ServerToken pki.Token
	HostToken   pki.Token
	Members     Membership
	Log         *slog.Logger
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use POST")
		return
	}
	var req Request
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "cannot decode request: "+err.Error())
		return
	}
	resp, err := h.admit(r.Context(), &req)
	switch {
	case errors.Is(err, ErrUnauthorized):
		h.Log.Warn("join refused: wrong secret", "name", req.Name, "remote", r.RemoteAddr)
		writeError(w, http.StatusForbidden, "unauthorized", err.Error())
	case errors.Is(err, ErrInvalid):
		writeError(w, http.StatusUnprocessableEntity, "invalid", err.Error())
	case errors.Is(err, ErrBusy):
		writeError(w, http.StatusServiceUnavailable, "busy", err.Error())
	case err != nil:
		h.Log.Error("join failed", "name", req.Name, "err", err)
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
	default:
		h.Log.Info("node joined", "name", req.Name, "role", resp.Role, "remote", r.RemoteAddr)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(resp)
	}
}

func (h *Handler) admit(ctx context.Context, req *Request) (*Response, error) {
	role := req.Role
	switch {
	case role == pki.RoleServer && h.ServerToken.CheckSecret(req.Secret):
	case role == pki.RoleHost && h.HostToken.CheckSecret(req.Secret):
	default:
		return nil, ErrUnauthorized
	}
	if err := req.Validate(); err != nil {
		return nil, err
	}
	pub, err := parsePublicKey(req.PublicKey)
	if err != nil {
		return nil, err
	}
	creq := pki.Request{CommonName: req.Name, Role: role, DNSNames: req.DNSNames}
	for _, ip := range req.IPs {
		creq.IPs = append(creq.IPs, net.ParseIP(ip))
	}
	cert, err := h.CA.Sign(pub, creq)
	if err != nil {
		return nil, err
	}
	resp := &Response{Role: role, CACert: h.CA.CertPEM, Cert: cert}
	if role == pki.RoleServer {
		if req.PeerURL == "" {
			return nil, fmt.Errorf("%w: a server must give its etcd peer URL", ErrInvalid)
		}
		resp.Secrets = map[string]string{pki.RoleServer: h.ServerToken.Secret, pki.RoleHost: h.HostToken.Secret}
		if resp.CAKey, err = h.CA.KeyPEM(); err != nil {
			return nil, err
		}
		if resp.InitialCluster, err = h.Members.AddLearner(ctx, req.Name, req.PeerURL); err != nil {
			return nil, err
		}
	}
	if resp.EtcdEndpoints, err = h.Members.ClientEndpoints(ctx); err != nil {
		return nil, err
	}
	return resp, nil
}

func parsePublicKey(b []byte) (any, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("%w: public key is not PEM", ErrInvalid)
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: public key: %v", ErrInvalid, err)
	}
	return pub, nil
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(Error{Code: code, Message: msg})
}
