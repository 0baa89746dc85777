package registry

import (
	"context"
	"errors"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pierpaas/pier/store"
)

// BlobLink says a blob belongs to a repository: only then can the
// repository's clients read it.
type BlobLink struct {
	Size      int64     `json:"size"`
	CreatedAt time.Time `json:"created_at"`
}

// Manifest is a repository's manifest: what a pull and the referrers API
// answer without reading its bytes (but annotations, which may be
// megabytes: an etcd value may not).
type Manifest struct {
	MediaType    string    `json:"media_type"`
	Size         int64     `json:"size"`
	ArtifactType string    `json:"artifact_type,omitempty"`
	Subject      string    `json:"subject,omitempty"` // "sha256:…": the manifest this one refers to
	Blobs        []string  `json:"blobs,omitempty"`   // hex digests of the blobs and manifests it references
	CreatedAt    time.Time `json:"created_at"`
}

// Tag names a manifest of a repository.
type Tag struct {
	Digest    string    `json:"digest"` // "sha256:…"
	UpdatedAt time.Time `json:"updated_at"`
}

// meta reads and writes the registry's records in the store.
type meta struct{ kv clientv3.KV }

func (m meta) blob(ctx context.Context, repo, hex string) (BlobLink, bool, error) {
	return get[BlobLink](ctx, m.kv, store.RegistryBlobsPrefix, repo, hex)
}

func (m meta) linkBlob(ctx context.Context, repo, hex string, size int64) error {
	k, err := store.Key(store.RegistryBlobsPrefix, repo, hex)
	if err != nil {
		return err
	}
	_, err = store.Put(ctx, m.kv, k, BlobLink{Size: size, CreatedAt: time.Now().UTC()})
	return err
}

func (m meta) unlinkBlob(ctx context.Context, repo, hex string) (bool, error) {
	return del(ctx, m.kv, store.RegistryBlobsPrefix, repo, hex)
}

func (m meta) manifest(ctx context.Context, repo, hex string) (Manifest, bool, error) {
	return get[Manifest](ctx, m.kv, store.RegistryManifestsPrefix, repo, hex)
}

func (m meta) tag(ctx context.Context, repo, tag string) (Tag, bool, error) {
	return get[Tag](ctx, m.kv, store.RegistryTagsPrefix, repo, tag)
}

// putManifest stores a manifest's record and, if tag is set, points the
// tag at it, in one transaction: a pull never sees a tag whose manifest
// is not there.
func (m meta) putManifest(ctx context.Context, repo, hex string, man Manifest, tag string) error {
	mk, err := store.Key(store.RegistryManifestsPrefix, repo, hex)
	if err != nil {
		return err
	}
	tx := store.Txn().Put(mk, man)
	if tag != "" {
		tk, err := store.Key(store.RegistryTagsPrefix, repo, tag)
		if err != nil {
			return err
		}
		tx.Put(tk, Tag{Digest: "sha256:" + hex, UpdatedAt: time.Now().UTC()})
	}
	_, err = tx.Commit(ctx, m.kv)
	return err
}

// deleteManifest removes a manifest and the tags that name it.
func (m meta) deleteManifest(ctx context.Context, repo, hex string) (bool, error) {
	tags, err := m.tags(ctx, repo)
	if err != nil {
		return false, err
	}
	for _, t := range tags {
		if t.Value.Digest == "sha256:"+hex {
			if err := store.DeleteIf(ctx, m.kv, t.Key, t.ModRevision); err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrConflict) {
				return false, err
			}
		}
	}
	return del(ctx, m.kv, store.RegistryManifestsPrefix, repo, hex)
}

func (m meta) deleteTag(ctx context.Context, repo, tag string) (bool, error) {
	return del(ctx, m.kv, store.RegistryTagsPrefix, repo, tag)
}

func (m meta) tags(ctx context.Context, repo string) ([]store.Item[Tag], error) {
	p, err := store.Prefix(store.RegistryTagsPrefix, repo)
	if err != nil {
		return nil, err
	}
	items, _, err := store.List[Tag](ctx, m.kv, p)
	return items, err
}

// manifests lists a repository's manifests, by hex digest.
func (m meta) manifests(ctx context.Context, repo string) (map[string]Manifest, error) {
	p, err := store.Prefix(store.RegistryManifestsPrefix, repo)
	if err != nil {
		return nil, err
	}
	items, _, err := store.List[Manifest](ctx, m.kv, p)
	if err != nil {
		return nil, err
	}
	out := make(map[string]Manifest, len(items))
	for _, it := range items {
		out[strings.TrimPrefix(it.Key, p)] = it.Value
	}
	return out, nil
}

// KeptBlobs are the blobstore digests the registry needs: every blob
// linked into a repository and every manifest's bytes. Garbage collection
// keeps them, and the replicator copies them to every server.
func KeptBlobs(ctx context.Context, kv clientv3.KV) (map[string]bool, error) {
	out := map[string]bool{}
	for _, prefix := range []string{store.RegistryBlobsPrefix, store.RegistryManifestsPrefix} {
		items, _, err := store.List[struct{}](ctx, kv, prefix)
		if err != nil {
			return nil, err
		}
		for _, it := range items {
			out[it.Key[strings.LastIndexByte(it.Key, '/')+1:]] = true
		}
	}
	return out, nil
}

func get[T any](ctx context.Context, kv clientv3.KV, prefix string, parts ...string) (T, bool, error) {
	var zero T
	k, err := store.Key(prefix, parts...)
	if err != nil {
		return zero, false, err
	}
	v, _, err := store.Get[T](ctx, kv, k)
	if errors.Is(err, store.ErrNotFound) {
		return zero, false, nil
	}
	return v, err == nil, err
}

func del(ctx context.Context, kv clientv3.KV, prefix string, parts ...string) (bool, error) {
	k, err := store.Key(prefix, parts...)
	if err != nil {
		return false, err
	}
	// Read first: the client must learn whether there was anything to
	// delete (404 otherwise).
	_, rev, err := store.Get[struct{}](ctx, kv, k)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	err = store.DeleteIf(ctx, kv, k, rev)
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) {
		// Deleted or rewritten concurrently: this delete did not happen.
		return false, nil
	}
	return err == nil, err
}
