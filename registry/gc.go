package registry

import (
	"context"
	"errors"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pierpaas/pier/store"
)

// DefaultLinkGrace is how long a blob linked into a repository may stay
// there without a manifest that references it: long enough for the
// manifest of a push in progress to arrive.
const DefaultLinkGrace = time.Hour

// CollectLinks unlinks, in every repository, the blobs no manifest of the
// repository references and that were linked longer than grace ago (the
// layers of deleted images, abandoned pushes), so that blobstore garbage
// collection can have them unless another repository still links them.
func CollectLinks(ctx context.Context, kv clientv3.KV, grace time.Duration, now time.Time) (int, error) {
	links, _, err := store.List[BlobLink](ctx, kv, store.RegistryBlobsPrefix)
	if err != nil {
		return 0, err
	}
	mans, _, err := store.List[Manifest](ctx, kv, store.RegistryManifestsPrefix)
	if err != nil {
		return 0, err
	}
	used := map[string]bool{} // repo + "/" + hex
	for _, m := range mans {
		repo := repoOf(m.Key, store.RegistryManifestsPrefix)
		for _, b := range m.Value.Blobs {
			used[repo+"/"+b] = true
		}
	}
	removed := 0
	for _, l := range links {
		rest := strings.TrimPrefix(l.Key, store.RegistryBlobsPrefix)
		if used[rest] || now.Sub(l.Value.CreatedAt) < grace {
			continue
		}
		err := store.DeleteIf(ctx, kv, l.Key, l.ModRevision)
		switch {
		case err == nil:
			removed++
		case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrNotFound):
			// Linked again meanwhile (a new push): it stays.
		default:
			return removed, err
		}
	}
	return removed, nil
}

// repoOf is the repository part of a key <prefix><repo>/<last>.
func repoOf(key, prefix string) string {
	rest := strings.TrimPrefix(key, prefix)
	return rest[:max(strings.LastIndexByte(rest, '/'), 0)]
}
