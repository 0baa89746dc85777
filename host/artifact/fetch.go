package artifact

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
)

// download fetches uri into a temp file in the cache directory, checks its
// digest, and only then extracts it into dir. Verifying first means the
// gzip and tar parsers only ever see the bytes the controller released,
// never whatever a compromised or confused blobstore serves; the archive is
// still extracted as hostile (see Extract), since its content is user code.
func (c *Cache) download(ctx context.Context, uri, digest, dir string, owner *Owner) error {
	u, err := parseURI(uri)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return fmt.Errorf("artifact: %w", err)
	}
	max := c.maxDownload()
	src, size, err := c.open(ctx, u)
	if err != nil {
		return err
	}
	defer src.Close()
	if size > max {
		return fmt.Errorf("%w: %s is %d bytes, limit %d", ErrLimit, safeURI(u), size, max)
	}

	tmp, err := os.CreateTemp(c.Dir, ".download-"+digest[:12]+"-")
	if err != nil {
		return fmt.Errorf("artifact: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()

	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(ctxReader{ctx, src}, max+1))
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err() // so waiting Fetches see it was our context, and retry
		}
		return fmt.Errorf("artifact: fetch %s: %w", safeURI(u), err)
	}
	if n > max {
		return fmt.Errorf("%w: %s is over %d bytes", ErrLimit, safeURI(u), max)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != digest {
		return fmt.Errorf("%w: %s: want %s, got %s", ErrDigestMismatch, safeURI(u), digest, got)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("artifact: %w", err)
	}
	lim := c.Limits
	lim.Owner = owner
	if err := Extract(ctxReader{ctx, tmp}, dir, lim); err != nil {
		// Another process sharing Dir may have won the rename; its tree
		// is the same artifact.
		if ok, _ := isDir(dir); ok {
			return nil
		}
		return fmt.Errorf("%w (extracting %s)", err, digest)
	}
	return nil
}

func (c *Cache) maxDownload() int64 {
	if c.MaxDownloadSize > 0 {
		return c.MaxDownloadSize
	}
	return c.Limits.withDefaults().MaxArchiveSize
}

// parseURI accepts file:///absolute/path and http(s) URLs. Other schemes
// (s3://, relative paths, file://otherhost/...) are refused rather than
// guessed at: the artifact URI comes from the store, and the host should do
// exactly one obvious thing with it.
func parseURI(uri string) (*url.URL, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnsupportedURI, err)
	}
	switch u.Scheme {
	case "http", "https":
		if u.Host == "" {
			return nil, fmt.Errorf("%w: %s: no host", ErrUnsupportedURI, safeURI(u))
		}
	case "file":
		if u.Opaque != "" || (u.Host != "" && u.Host != "localhost") || !filepath.IsAbs(u.Path) {
			return nil, fmt.Errorf("%w: %s: want file:///absolute/path", ErrUnsupportedURI, safeURI(u))
		}
	default:
		return nil, fmt.Errorf("%w: %q: want file://, http:// or https://", ErrUnsupportedURI, u.Scheme)
	}
	return u, nil
}

// open returns the archive's bytes and their length if known (-1 if not).
func (c *Cache) open(ctx context.Context, u *url.URL) (io.ReadCloser, int64, error) {
	if u.Scheme == "file" {
		f, err := os.Open(u.Path)
		if err != nil {
			return nil, 0, fmt.Errorf("artifact: %w", err)
		}
		fi, err := f.Stat()
		if err != nil || !fi.Mode().IsRegular() {
			f.Close()
			return nil, 0, fmt.Errorf("artifact: %s is not a regular file", u.Path)
		}
		return f, fi.Size(), nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, 0, fmt.Errorf("artifact: %w", err)
	}
	if c.Authorize != nil {
		if err := c.Authorize(req); err != nil {
			return nil, 0, fmt.Errorf("artifact: authorize %s: %w", safeURI(u), err)
		}
	}
	client := c.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		// The client's error repeats the full URL; keep signatures out of
		// logs by reporting only the safe form.
		if ctx.Err() != nil {
			err = ctx.Err()
		} else if ue, ok := err.(*url.Error); ok {
			err = ue.Err
		}
		return nil, 0, fmt.Errorf("artifact: fetch %s: %w", safeURI(u), err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, 0, &StatusError{URI: safeURI(u), Code: resp.StatusCode}
	}
	return resp.Body, resp.ContentLength, nil
}

// safeURI drops credentials and the query (presigned URLs carry their
// signature there) so errors can be logged.
func safeURI(u *url.URL) string {
	v := *u
	v.User, v.RawQuery, v.ForceQuery, v.Fragment = nil, "", false, ""
	return v.String()
}

// ctxReader makes a plain reader (a local file, the temp file being
// extracted) give up when the context ends; http bodies do so already.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}
