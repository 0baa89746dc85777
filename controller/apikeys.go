package controller

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/internal/pki"
	"github.com/pierpaas/pier/store"
)

// keyPrefix starts every API key, so a leaked one is easy to recognise
// (and to find with a secret scanner).
const keyPrefix = "pier_"

// newKey makes a key and its record.
func newKey(name string, now time.Time) (api.NewAPIKey, error) {
	var id [6]byte
	var secret [24]byte
	if _, err := rand.Read(id[:]); err != nil {
		return api.NewAPIKey{}, err
	}
	if _, err := rand.Read(secret[:]); err != nil {
		return api.NewAPIKey{}, err
	}
	k := api.NewAPIKey{APIKey: api.APIKey{ID: hex.EncodeToString(id[:]), Name: name, CreatedAt: now.UTC()}}
	k.Key = keyPrefix + k.ID + "_" + hex.EncodeToString(secret[:])
	k.Hash = hashKey(k.Key)
	return k, nil
}

func hashKey(key string) string {
	h := sha256.Sum256([]byte(key))
	return hex.EncodeToString(h[:])
}

// keyID is the id part of a key, or "" when it is not shaped like one.
func keyID(key string) string {
	rest, ok := strings.CutPrefix(key, keyPrefix)
	if !ok {
		return ""
	}
	id, _, ok := strings.Cut(rest, "_")
	if !ok || !api.ValidID(id) {
		return ""
	}
	return id
}

// authenticate checks the request's key: "Authorization: Bearer KEY", or
// KEY as the password of basic authentication (what git and curl -u send).
func (c *Controller) authenticate(r *http.Request) error {
	key, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		_, key, ok = r.BasicAuth()
	}
	if !ok || key == "" {
		return api.Errorf(api.ErrCodeUnauthenticated, "an API key is required (Authorization: Bearer KEY)")
	}
	return c.checkKey(key)
}

// checkKey checks an API key's secret.
func (c *Controller) checkKey(key string) error {
	id := keyID(key)
	if id != "" {
		if it, found := c.keys.Get(store.APIKeysPrefix + id); found {
			want, got := it.Value.Hash, hashKey(key)
			if subtle.ConstantTimeCompare([]byte(want), []byte(got)) == 1 {
				return nil
			}
		}
	}
	return api.Errorf(api.ErrCodeUnauthenticated, "the API key is not valid")
}

// AuthorizeAPIKey checks an API key (for the git receiver, where it is
// the HTTP password).
func (c *Controller) AuthorizeAPIKey(_ context.Context, key string) error { return c.checkKey(key) }

// BootstrapKey makes sure the cluster has an API key. The first server to
// find none creates one and writes it to file (0600) for the operator;
// later calls find the key and return the file's contents, or "" when
// another server made it (its operator has the file).
func BootstrapKey(ctx context.Context, kv clientv3.KV, file string) (string, error) {
	items, _, err := store.List[api.APIKey](ctx, kv, store.APIKeysPrefix)
	if err != nil {
		return "", err
	}
	if len(items) > 0 {
		b, err := os.ReadFile(file)
		if errors.Is(err, os.ErrNotExist) {
			return "", nil
		}
		return strings.TrimSpace(string(b)), err
	}
	k, err := newKey("admin", time.Now())
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return "", err
	}
	// The file first: a key in the store that nobody knows would lock the
	// operator out.
	if err := pki.WriteFile(file, []byte(k.Key+"\n")); err != nil {
		return "", err
	}
	if _, err := store.Create(ctx, kv, store.APIKeysPrefix+k.ID, k.APIKey); err != nil {
		return "", fmt.Errorf("controller: store the first API key: %w", err)
	}
	return k.Key, nil
}

func (c *Controller) listKeys(w http.ResponseWriter, r *http.Request) error {
	items, _, err := store.List[api.APIKey](r.Context(), c.Client, store.APIKeysPrefix)
	if err != nil {
		return err
	}
	out := make([]api.APIKey, 0, len(items))
	for _, it := range items {
		k := it.Value
		k.Hash = ""
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (c *Controller) createKey(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Name string `json:"name"`
	}
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if len(req.Name) > 100 || !printableOrSpace(req.Name) {
		return invalid("a key's name is at most 100 printable characters")
	}
	k, err := newKey(req.Name, time.Now())
	if err != nil {
		return err
	}
	if _, err := store.Create(r.Context(), c.Client, store.APIKeysPrefix+k.ID, k.APIKey); err != nil {
		return err
	}
	k.Hash = ""
	writeJSON(w, http.StatusCreated, k)
	return nil
}

func (c *Controller) deleteKey(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if !api.ValidID(id) {
		return notFound("no API key %q", id)
	}
	items, _, err := store.List[api.APIKey](r.Context(), c.Client, store.APIKeysPrefix)
	if err != nil {
		return err
	}
	var found *store.Item[api.APIKey]
	for i := range items {
		if items[i].Value.ID == id {
			found = &items[i]
		}
	}
	if found == nil {
		return notFound("no API key %q", id)
	}
	if len(items) == 1 {
		return conflict("%s is the cluster's last API key; create another before deleting it", id)
	}
	if err := store.DeleteIf(r.Context(), c.Client, found.Key, found.ModRevision); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func printableOrSpace(s string) bool {
	return !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}
