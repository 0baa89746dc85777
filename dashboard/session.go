package dashboard

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pierpaas/pier/store"
)

// ErrNoSession reports a cookie or ticket that names no live session.
var ErrNoSession = errors.New("dashboard: no such session")

// A session lets a browser use the API with the key it signed in with,
// without the page's scripts ever holding the key (the cookie is
// HttpOnly). The key has to be stored somewhere between requests: it is
// kept in etcd, so that any server of the cluster honours the cookie, but
// sealed with a secret that only the cookie carries, so that the store
// (and its backups) never hold a usable key.
type session struct {
	// Sealed is the API key, encrypted (AES-GCM) with the cookie's secret.
	Sealed []byte `json:"sealed"`
	// CSRF is the token every change must carry in X-CSRF-Token: a page
	// of another site can make the browser send the cookie, but cannot
	// read this token.
	CSRF      string    `json:"csrf,omitempty"`
	KeyID     string    `json:"key_id,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// sessions keeps sessions and one-time sign-in tickets in etcd, each on a
// lease of its lifetime so that etcd forgets it without a sweeper.
type sessions struct {
	client *clientv3.Client
	now    func() time.Time
}

// A token is "<id>.<secret>": the id finds the record (hashed, so the
// store cannot be used to forge a cookie), the secret opens the sealed key.
type token struct{ id, secret []byte }

func newToken() (token, error) {
	t := token{id: make([]byte, 16), secret: make([]byte, 32)}
	if _, err := rand.Read(t.id); err != nil {
		return t, err
	}
	_, err := rand.Read(t.secret)
	return t, err
}

func (t token) String() string {
	return base64.RawURLEncoding.EncodeToString(t.id) + "." + base64.RawURLEncoding.EncodeToString(t.secret)
}

func parseToken(s string) (token, error) {
	a, b, ok := strings.Cut(s, ".")
	if !ok {
		return token{}, ErrNoSession
	}
	id, err1 := base64.RawURLEncoding.DecodeString(a)
	secret, err2 := base64.RawURLEncoding.DecodeString(b)
	if err1 != nil || err2 != nil || len(id) != 16 || len(secret) != 32 {
		return token{}, ErrNoSession
	}
	return token{id, secret}, nil
}

func (t token) storeKey(kind string) string {
	h := sha256.Sum256(t.id)
	return store.DashboardSessions + kind + "/" + hex.EncodeToString(h[:])
}

func seal(secret []byte, plain string) ([]byte, error) {
	gcm, err := newGCM(secret)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, gcm.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return gcm.Seal(nonce, nonce, []byte(plain), nil), nil
}

func unseal(secret, sealed []byte) (string, error) {
	gcm, err := newGCM(secret)
	if err != nil {
		return "", err
	}
	if len(sealed) < gcm.NonceSize() {
		return "", ErrNoSession
	}
	plain, err := gcm.Open(nil, sealed[:gcm.NonceSize()], sealed[gcm.NonceSize():], nil)
	if err != nil {
		return "", ErrNoSession
	}
	return string(plain), nil
}

func newGCM(secret []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(secret)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func randomString() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// create stores a record of kind ("session" or "ticket") holding key for
// ttl, and returns the token that opens it.
func (s *sessions) create(ctx context.Context, kind, key, keyID string, ttl time.Duration) (token, session, error) {
	t, err := newToken()
	if err != nil {
		return t, session{}, err
	}
	sealed, err := seal(t.secret, key)
	if err != nil {
		return t, session{}, err
	}
	now := s.now()
	rec := session{Sealed: sealed, KeyID: keyID, CreatedAt: now, ExpiresAt: now.Add(ttl)}
	if kind == "session" {
		if rec.CSRF, err = randomString(); err != nil {
			return t, rec, err
		}
	}
	lease, err := s.client.Grant(ctx, int64(ttl/time.Second))
	if err != nil {
		return t, rec, err
	}
	b, _ := json.Marshal(rec)
	if _, err := s.client.Put(ctx, t.storeKey(kind), string(b), clientv3.WithLease(lease.ID)); err != nil {
		return t, rec, err
	}
	return t, rec, nil
}

// get opens the session a cookie names: its record and the API key.
func (s *sessions) get(ctx context.Context, cookie string) (session, string, error) {
	t, err := parseToken(cookie)
	if err != nil {
		return session{}, "", err
	}
	resp, err := s.client.Get(ctx, t.storeKey("session"))
	if err != nil {
		return session{}, "", err
	}
	if len(resp.Kvs) == 0 {
		return session{}, "", ErrNoSession
	}
	return s.open(t, resp.Kvs[0].Value)
}

func (s *sessions) open(t token, value []byte) (session, string, error) {
	var rec session
	if err := json.Unmarshal(value, &rec); err != nil {
		return rec, "", err
	}
	// The lease ends the record, but a lease's TTL is a minimum: the
	// record's own deadline is the one that counts.
	if !s.now().Before(rec.ExpiresAt) {
		return rec, "", ErrNoSession
	}
	key, err := unseal(t.secret, rec.Sealed)
	return rec, key, err
}

// redeem uses up a one-time ticket: it is deleted in the same request that
// reads it, so of two browsers opening one URL only one gets in.
func (s *sessions) redeem(ctx context.Context, ticket string) (session, string, error) {
	t, err := parseToken(ticket)
	if err != nil {
		return session{}, "", err
	}
	resp, err := s.client.Delete(ctx, t.storeKey("ticket"), clientv3.WithPrevKV())
	if err != nil {
		return session{}, "", err
	}
	if len(resp.PrevKvs) == 0 {
		return session{}, "", ErrNoSession
	}
	return s.open(t, resp.PrevKvs[0].Value)
}

// remove ends a session (logout).
func (s *sessions) remove(ctx context.Context, cookie string) error {
	t, err := parseToken(cookie)
	if err != nil {
		return nil
	}
	_, err = s.client.Delete(ctx, t.storeKey("session"))
	return err
}
