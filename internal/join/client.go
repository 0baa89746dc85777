package join

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/pierpaas/pier/internal/pki"
)

// Join asks the servers at addrs (host:port of their API) to admit this
// node, trying each in turn and retrying while membership is busy, and
// writes the credentials it receives into credDir. The CA key is written
// too when the token is a server token.
func Join(ctx context.Context, addrs []string, token pki.Token, req Request, credDir string) (*Response, error) {
	key, keyPEM, err := pki.NewKey()
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, err
	}
	req.PublicKey = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	req.Secret = token.Secret
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	hc := &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: pki.PinnedConfig(token.CAFingerprint)},
	}
	defer hc.CloseIdleConnections()

	var lastErr error
	for attempt := 0; ; attempt++ {
		for _, addr := range addrs {
			resp, err := post(ctx, hc, addr, body)
			if err == nil {
				if err := save(credDir, resp, keyPEM); err != nil {
					return nil, err
				}
				return resp, nil
			}
			// A wrong token or a bad request will not get better.
			if errors.Is(err, ErrUnauthorized) || errors.Is(err, ErrInvalid) || errors.Is(err, pki.ErrBadToken) {
				return nil, err
			}
			lastErr = err
		}
		if attempt >= 60 {
			return nil, lastErr
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("join: %w (last error: %v)", ctx.Err(), lastErr)
		case <-time.After(time.Second):
		}
	}
}

func post(ctx context.Context, hc *http.Client, addr string, body []byte) (*Response, error) {
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+addr+Path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	hr.Header.Set("Content-Type", "application/json")
	res, err := hc.Do(hr)
	if err != nil {
		if strings.Contains(err.Error(), pki.ErrBadToken.Error()) {
			return nil, fmt.Errorf("%w: %s answers with a different CA", pki.ErrBadToken, addr)
		}
		return nil, fmt.Errorf("join: %s: %w", addr, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if res.StatusCode != http.StatusOK {
		var e Error
		json.Unmarshal(data, &e)
		switch res.StatusCode {
		case http.StatusForbidden:
			return nil, ErrUnauthorized
		case http.StatusUnprocessableEntity, http.StatusBadRequest:
			return nil, fmt.Errorf("%w: %s", ErrInvalid, e.Message)
		case http.StatusServiceUnavailable:
			return nil, fmt.Errorf("%w: %s", ErrBusy, e.Message)
		}
		return nil, fmt.Errorf("join: %s answered %s: %s", addr, res.Status, e.Message)
	}
	var resp Response
	if err := json.Unmarshal(data, &resp); err != nil {
		return nil, fmt.Errorf("join: bad response from %s: %w", addr, err)
	}
	return &resp, nil
}

func save(dir string, resp *Response, keyPEM []byte) error {
	if err := pki.SaveCredentials(dir, resp.CACert, resp.Cert, keyPEM); err != nil {
		return err
	}
	if len(resp.CAKey) > 0 {
		if err := pki.WriteFile(filepath.Join(dir, pki.CAKeyFile), resp.CAKey); err != nil {
			return err
		}
	}
	for role, secret := range resp.Secrets {
		if err := pki.SaveSecret(dir, role, secret); err != nil {
			return err
		}
	}
	return nil
}
