package artifact

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
)

// GC removes the images keep (given a manifest digest) does not want,
// and every layer no remaining image uses, with leftovers of unpacks that
// died with their process. It does nothing while a pull is going on,
// whose layers no record protects yet; a pull waits for it to end.
func (c *ImageCache) GC(keep func(digest string) bool) (removed []string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pulls > 0 || len(c.inflight) > 0 {
		return nil, nil
	}
	records, err := os.ReadDir(filepath.Join(c.Dir, "images"))
	if err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	used := map[string]bool{}
	for _, r := range records {
		digest, ok := strings.CutSuffix(r.Name(), ".json")
		path := filepath.Join(c.Dir, "images", r.Name())
		if !ok || !ValidDigest(digest) || !keep(digest) {
			if err := os.Remove(path); err == nil && ok {
				removed = append(removed, digest)
			}
			continue
		}
		var p pulled
		b, err := os.ReadFile(path)
		if err != nil || json.Unmarshal(b, &p) != nil {
			os.Remove(path)
			continue
		}
		for _, l := range p.Layers {
			used[l] = true
		}
	}
	layers, err := os.ReadDir(c.Dir)
	if err != nil {
		if os.IsNotExist(err) {
			return removed, nil
		}
		return removed, err
	}
	for _, l := range layers {
		name := l.Name()
		if name == "images" || used[name] {
			continue
		}
		if err := os.RemoveAll(filepath.Join(c.Dir, name)); err == nil && ValidDigest(name) {
			removed = append(removed, name)
		}
	}
	return removed, nil
}
