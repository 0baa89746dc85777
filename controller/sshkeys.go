package controller

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"sort"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/store"
)

// SSH keys that may git push, as Heroku's keys:add. A key's id is its
// SHA-256 fingerprint, so the git receiver finds a presented key with
// one read, and the same key cannot be added twice.

// SSHKeyID is the store id of a public key.
func SSHKeyID(key ssh.PublicKey) string {
	return strings.TrimPrefix(ssh.FingerprintSHA256(key), "SHA256:")
}

// sshKeyPath makes a fingerprint safe as a key path element: standard
// base64 has '/' and '+'.
func sshKeyPath(id string) string {
	raw, err := base64.RawStdEncoding.DecodeString(id)
	if err != nil {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString(raw)
}

func (c *Controller) listSSHKeys(w http.ResponseWriter, r *http.Request) error {
	items, _, err := store.List[api.SSHKey](r.Context(), c.Client, store.SSHKeysPrefix)
	if err != nil {
		return err
	}
	keys := make([]api.SSHKey, 0, len(items))
	for _, it := range items {
		keys = append(keys, it.Value)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].CreatedAt.Before(keys[j].CreatedAt) })
	writeJSON(w, http.StatusOK, keys)
	return nil
}

func (c *Controller) addSSHKey(w http.ResponseWriter, r *http.Request) error {
	var req api.AddSSHKeyRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	pub, comment, _, rest, err := ssh.ParseAuthorizedKey([]byte(req.PublicKey))
	if err != nil {
		return invalid("public_key: not an SSH public key in authorized_keys format (ssh-ed25519 AAAA... comment): %v", err)
	}
	if strings.TrimSpace(string(rest)) != "" {
		return invalid("public_key: give one key")
	}
	if pub.Type() == ssh.KeyAlgoDSA {
		return invalid("public_key: DSA keys are too weak; use ed25519 or RSA")
	}
	if !printable(comment) || len(comment) > 200 {
		comment = ""
	}
	id := sshKeyPath(SSHKeyID(pub))
	k := api.SSHKey{ID: id, Fingerprint: ssh.FingerprintSHA256(pub), Comment: comment,
		PublicKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))), CreatedAt: time.Now().UTC()}
	if _, err := store.Create(r.Context(), c.Client, store.SSHKeysPrefix+id, k); errors.Is(err, store.ErrExists) {
		return conflict("key %s is already registered", k.Fingerprint)
	} else if err != nil {
		return err
	}
	c.Log.Info("ssh key added", "fingerprint", k.Fingerprint)
	writeJSON(w, http.StatusCreated, k)
	return nil
}

// removeSSHKey removes a key by its id, fingerprint or comment.
func (c *Controller) removeSSHKey(w http.ResponseWriter, r *http.Request) error {
	ref := r.PathValue("id")
	items, _, err := store.List[api.SSHKey](r.Context(), c.Client, store.SSHKeysPrefix)
	if err != nil {
		return err
	}
	var match []api.SSHKey
	for _, it := range items {
		k := it.Value
		if k.ID == ref || k.Fingerprint == ref || strings.TrimPrefix(k.Fingerprint, "SHA256:") == ref || (k.Comment != "" && k.Comment == ref) {
			match = append(match, k)
		}
	}
	switch len(match) {
	case 0:
		return notFound("no SSH key %q", ref)
	case 1:
	default:
		return conflict("%d keys have the comment %q; remove one by its fingerprint", len(match), ref)
	}
	if err := store.Delete(r.Context(), c.Client, store.SSHKeysPrefix+match[0].ID); err != nil {
		return err
	}
	c.Log.Info("ssh key removed", "fingerprint", match[0].Fingerprint)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// AuthorizeSSHKey reports whether key is registered (for the git receiver).
func (c *Controller) AuthorizeSSHKey(ctx context.Context, key ssh.PublicKey) error {
	_, _, err := store.Get[api.SSHKey](ctx, c.Client, store.SSHKeysPrefix+sshKeyPath(SSHKeyID(key)))
	if errors.Is(err, store.ErrNotFound) {
		return api.Errorf(api.ErrCodeUnauthenticated, "this SSH key is not registered; add it with pier keys add")
	}
	return err
}

func (c *Controller) gitInfo(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, c.Git)
	return nil
}

// AppID identifies an app for as long as it exists, "" when there is no
// such app (for the git receiver): its creation time, which an app
// destroyed and created again under the same name does not share.
func (c *Controller) AppID(ctx context.Context, name string) (string, error) {
	if api.ValidateAppName(name) != nil {
		return "", nil
	}
	a, _, err := store.Get[api.App](ctx, c.Client, appKey(name))
	if errors.Is(err, store.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return a.CreatedAt.UTC().Format(time.RFC3339Nano), nil
}
