package registry

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pierpaas/pier/blobstore"
)

// staleUpload is how long an upload may sit untouched before the next
// new upload removes it.
const staleUpload = 24 * time.Hour

func (h *handler) blob(w http.ResponseWriter, r *http.Request, req request) error {
	hex, err := parseDigest(req.ref)
	if err != nil {
		return err
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		_, ok, err := h.meta.blob(r.Context(), req.name, hex)
		if err != nil {
			return err
		}
		if !ok {
			return errorf(http.StatusNotFound, codeBlobUnknown, "blob unknown to repository "+req.name)
		}
		f, _, err := h.openBlob(r.Context(), hex)
		if errors.Is(err, blobstore.ErrNotFound) {
			return errorf(http.StatusNotFound, codeBlobUnknown, "blob not found on any server")
		}
		if err != nil {
			return err
		}
		defer f.Close()
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Docker-Content-Digest", "sha256:"+hex)
		w.Header().Set("ETag", `"sha256:`+hex+`"`)
		http.ServeContent(w, r, "", time.Time{}, f)
		return nil
	case http.MethodDelete:
		ok, err := h.meta.unlinkBlob(r.Context(), req.name, hex)
		if err != nil {
			return err
		}
		if !ok {
			return errorf(http.StatusNotFound, codeBlobUnknown, "blob unknown to repository "+req.name)
		}
		w.WriteHeader(http.StatusAccepted)
		return nil
	}
	return methodNotAllowed(w, "GET, HEAD, DELETE")
}

// An upload in progress is the file <UploadDir>/<repo>/<id>: its size is
// how much has been received. Slashes of nested names become "+", which
// no name contains.
func (h *handler) uploadPath(repo, id string) string {
	return filepath.Join(h.cfg.UploadDir, strings.ReplaceAll(repo, "/", "+"), id)
}

func validUploadID(id string) bool {
	if len(id) != 32 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil && strings.ToLower(id) == id
}

func (h *handler) upload(w http.ResponseWriter, r *http.Request, req request) error {
	if req.ref == "" {
		if r.Method != http.MethodPost {
			return methodNotAllowed(w, "POST")
		}
		return h.startUpload(w, r, req)
	}
	if !validUploadID(req.ref) {
		return errorf(http.StatusNotFound, codeBlobUploadUnknown, "unknown upload")
	}
	// One request at a time per upload: two chunks sent at once must
	// not interleave their bytes.
	unlock := h.lockUpload(req.ref)
	defer unlock()
	path := h.uploadPath(req.name, req.ref)
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return errorf(http.StatusNotFound, codeBlobUploadUnknown, "unknown upload (an upload continues on the server it started on)")
	}
	if err != nil {
		return err
	}
	switch r.Method {
	case http.MethodGet:
		uploadStatus(w, req, fi.Size(), http.StatusNoContent)
		return nil
	case http.MethodPatch:
		n, err := h.appendChunk(w, r, req, path, fi.Size())
		if err != nil {
			return err
		}
		uploadStatus(w, req, n, http.StatusAccepted)
		return nil
	case http.MethodPut:
		n := fi.Size()
		if r.ContentLength != 0 {
			if n, err = h.appendChunk(w, r, req, path, n); err != nil {
				return err
			}
		}
		return h.finishUpload(w, r, req, path, n)
	case http.MethodDelete:
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	return methodNotAllowed(w, "GET, PATCH, PUT, DELETE")
}

// lockUpload serializes the requests of one upload.
func (h *handler) lockUpload(id string) func() {
	h.mu.Lock()
	if h.uploads == nil {
		h.uploads = map[string]*uploadLock{}
	}
	l := h.uploads[id]
	if l == nil {
		l = &uploadLock{}
		h.uploads[id] = l
	}
	l.users++
	h.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		h.mu.Lock()
		if l.users--; l.users == 0 {
			delete(h.uploads, id)
		}
		h.mu.Unlock()
	}
}

type uploadLock struct {
	mu    sync.Mutex
	users int // requests holding or waiting for mu
}

// uploadStatus answers where an upload stands: Range is the bytes
// received, inclusive ("0-0" for none yet, as distribution answers).
func uploadStatus(w http.ResponseWriter, req request, size int64, status int) {
	w.Header().Set("Location", "/v2/"+req.name+"/blobs/uploads/"+req.ref)
	w.Header().Set("Range", fmt.Sprintf("0-%d", max(size-1, 0)))
	w.Header().Set("Docker-Upload-UUID", req.ref)
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(status)
}

func (h *handler) startUpload(w http.ResponseWriter, r *http.Request, req request) error {
	q := r.URL.Query()
	if mount := q.Get("mount"); mount != "" {
		done, err := h.mount(w, r, req, mount, q.Get("from"))
		if err != nil || done {
			return err
		}
		// Not mountable: the client uploads as if it had not asked.
	}
	if d := q.Get("digest"); d != "" {
		// A monolithic upload: the whole blob in the POST.
		hex, err := parseDigest(d)
		if err != nil {
			return err
		}
		return h.putBlob(w, r, req, r.Body, hex)
	}
	dir := filepath.Dir(h.uploadPath(req.name, "x"))
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	h.sweepUploads(dir)
	var b [16]byte
	rand.Read(b[:])
	req.ref = hex.EncodeToString(b[:])
	f, err := os.OpenFile(h.uploadPath(req.name, req.ref), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	f.Close()
	w.Header().Set("OCI-Chunk-Min-Length", "0")
	uploadStatus(w, req, 0, http.StatusAccepted)
	return nil
}

// sweepUploads removes abandoned uploads of one repository.
func (h *handler) sweepUploads(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > staleUpload {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// mount links a blob of another repository (or, without from, any blob
// the cluster stores) into this one. It reports whether it answered.
func (h *handler) mount(w http.ResponseWriter, r *http.Request, req request, mount, from string) (bool, error) {
	hex, err := parseDigest(mount)
	if err != nil {
		return false, nil
	}
	var size int64
	if from != "" {
		if !nameRE.MatchString(from) || h.cfg.Repository(r.Context(), from) != nil {
			return false, nil
		}
		link, ok, err := h.meta.blob(r.Context(), from, hex)
		if err != nil || !ok {
			return false, err
		}
		size = link.Size
	} else {
		f, b, err := h.openBlob(r.Context(), hex)
		if err != nil {
			return false, nil
		}
		f.Close()
		size = b.Size
	}
	if err := h.meta.linkBlob(r.Context(), req.name, hex, size); err != nil {
		return false, err
	}
	blobCreated(w, req.name, hex)
	return true, nil
}

func blobCreated(w http.ResponseWriter, repo, hex string) {
	w.Header().Set("Location", "/v2/"+repo+"/blobs/sha256:"+hex)
	w.Header().Set("Docker-Content-Digest", "sha256:"+hex)
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
}

// appendChunk adds the request's body to an upload. A Content-Range must
// start where the upload stands (416 otherwise, and the client asks
// where that is); without one the body is streamed on.
func (h *handler) appendChunk(w http.ResponseWriter, r *http.Request, req request, path string, size int64) (int64, error) {
	if cr := r.Header.Get("Content-Range"); cr != "" {
		start, end, ok := parseContentRange(cr)
		if !ok || start != size || (r.ContentLength >= 0 && end-start+1 != r.ContentLength) {
			w.Header().Set("Location", "/v2/"+req.name+"/blobs/uploads/"+req.ref)
			w.Header().Set("Range", fmt.Sprintf("0-%d", max(size-1, 0)))
			return 0, errorf(http.StatusRequestedRangeNotSatisfiable, codeBlobUploadInvalid,
				fmt.Sprintf("chunk %s does not continue the upload, which has %d bytes", cr, size))
		}
	}
	limit := h.cfg.Blobs.MaxSize()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	body := io.Reader(r.Body)
	if limit > 0 {
		body = io.LimitReader(body, limit-size+1)
	}
	n, err := io.Copy(f, body)
	if err != nil {
		// A partial chunk would leave the upload where no client
		// expects it: cut it back.
		f.Truncate(size)
		return 0, err
	}
	if limit > 0 && size+n > limit {
		f.Truncate(size)
		return 0, errorf(http.StatusRequestEntityTooLarge, codeSizeInvalid, fmt.Sprintf("blob exceeds the limit of %d bytes", limit))
	}
	return size + n, nil
}

// parseContentRange reads "start-end" (what clients send on a PATCH),
// also in the "bytes start-end/*" form.
func parseContentRange(s string) (int64, int64, bool) {
	s = strings.TrimPrefix(s, "bytes ")
	s, _, _ = strings.Cut(s, "/")
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return 0, 0, false
	}
	start, err1 := strconv.ParseInt(a, 10, 64)
	end, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || start < 0 || end < start {
		return 0, 0, false
	}
	return start, end, true
}

// finishUpload closes an upload with the digest the client says it has.
func (h *handler) finishUpload(w http.ResponseWriter, r *http.Request, req request, path string, size int64) error {
	hex, err := parseDigest(r.URL.Query().Get("digest"))
	if err != nil {
		return err
	}
	b, err := h.cfg.Blobs.Adopt(r.Context(), path, hex)
	if err = blobError(err, h.cfg.Blobs.MaxSize()); err != nil {
		var re *regError
		if errors.As(err, &re) {
			// Done: a failed digest check ends the upload, as the spec
			// has it.
			os.Remove(path)
		}
		return err
	}
	if err := h.meta.linkBlob(r.Context(), req.name, b.SHA256, b.Size); err != nil {
		return err
	}
	blobCreated(w, req.name, hex)
	return nil
}

// blobError is a blobstore refusal as the spec's error.
func blobError(err error, limit int64) error {
	switch {
	case errors.Is(err, blobstore.ErrDigestMismatch):
		return errorf(http.StatusBadRequest, codeDigestInvalid, "the content does not match the digest")
	case errors.Is(err, blobstore.ErrTooLarge):
		return errorf(http.StatusRequestEntityTooLarge, codeSizeInvalid, fmt.Sprintf("blob exceeds the limit of %d bytes", limit))
	}
	return err
}

// putBlob stores a blob whose digest must be hex and links it into the
// repository.
func (h *handler) putBlob(w http.ResponseWriter, r *http.Request, req request, body io.Reader, hex string) error {
	b, err := h.cfg.Blobs.Put(r.Context(), body, hex)
	if err = blobError(err, h.cfg.Blobs.MaxSize()); err != nil {
		return err
	}
	if err := h.meta.linkBlob(r.Context(), req.name, b.SHA256, b.Size); err != nil {
		return err
	}
	blobCreated(w, req.name, hex)
	return nil
}
