package blobstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"syscall"
	"time"
)

// Error codes of the HTTP API; stable, for programs to match on.
const (
	CodeUnauthorized     = "unauthenticated" // the same code as every pier API
	CodeBadDigest        = "bad_digest"
	CodeDigestMismatch   = "digest_mismatch"
	CodeTooLarge         = "too_large"
	CodeNotFound         = "not_found"
	CodeMethodNotAllowed = "method_not_allowed"
	CodeInternal         = "internal"
	// CodeInsufficientStorage (507): the blobstore's disk is full.
	CodeInsufficientStorage = "insufficient_storage"
)

// PathPrefix is where blobs live in the HTTP API: PathPrefix + digest.
const PathPrefix = "/blobs/sha256/"

// immutableCache lets clients and proxies keep a blob forever: its name is
// its content, so it can never change.
const immutableCache = "public, max-age=31536000, immutable"

// Handler serves the store over HTTP:
//
//	PUT    /blobs/sha256/<digest>  body = blob; 201 created, 200 already stored
//	GET    /blobs/sha256/<digest>  the blob, with Range and If-None-Match
//	HEAD   /blobs/sha256/<digest>
//	DELETE /blobs/sha256/<digest>  204
//
// auth runs before anything else, on every request, so an unauthenticated
// client learns nothing, not even which paths exist. Errors are JSON
// {"code", "message"}. Mount it at the server root or under a prefix with
// http.StripPrefix.
func Handler(s *Store, auth func(*http.Request) error) http.Handler {
	if auth == nil {
		// Every internal endpoint is authenticated (DESIGN.md); forgetting
		// auth must fail at startup, not open the store to every job.
		panic("blobstore: Handler needs an auth func")
	}
	return &handler{s: s, auth: auth}
}

type handler struct {
	s    *Store
	auth func(*http.Request) error
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := h.auth(r); err != nil {
		writeError(w, http.StatusUnauthorized, CodeUnauthorized, err.Error())
		return
	}
	digest, ok := strings.CutPrefix(r.URL.Path, PathPrefix)
	if !ok || digest == "" {
		writeError(w, http.StatusNotFound, CodeNotFound, "no such endpoint: "+r.URL.Path)
		return
	}
	if !ValidDigest(digest) {
		writeError(w, http.StatusBadRequest, CodeBadDigest, ErrBadDigest.Error())
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		h.get(w, r, digest)
	case http.MethodPut:
		h.put(w, r, digest)
	case http.MethodDelete:
		h.delete(w, digest)
	default:
		w.Header().Set("Allow", "GET, HEAD, PUT, DELETE")
		writeError(w, http.StatusMethodNotAllowed, CodeMethodNotAllowed, "method "+r.Method+" not allowed")
	}
}

func (h *handler) get(w http.ResponseWriter, r *http.Request, digest string) {
	f, b, err := h.s.Open(digest)
	if err != nil {
		writeStoreError(w, err)
		return
	}
	defer f.Close()
	hdr := w.Header()
	hdr.Set("Content-Type", "application/octet-stream")
	hdr.Set("ETag", `"`+b.SHA256+`"`)
	hdr.Set("Cache-Control", immutableCache)
	// A zero modtime keeps Last-Modified out: the file's mtime is refreshed
	// by re-uploads and says nothing about the content; the ETag does.
	http.ServeContent(w, r, "", time.Time{}, f)
}

func (h *handler) put(w http.ResponseWriter, r *http.Request, digest string) {
	limit := h.s.MaxSize()
	if limit > 0 {
		if r.ContentLength > limit {
			writeError(w, http.StatusRequestEntityTooLarge, CodeTooLarge, tooLargeMsg(limit))
			return
		}
		// MaxBytesReader, unlike the store's own cap, also tells the server
		// to close the connection rather than drain a huge body.
		r.Body = http.MaxBytesReader(w, r.Body, limit)
	}
	b, created, err := h.s.put(r.Context(), r.Body, digest)
	if err != nil {
		writeStoreError(w, err)
		return
	}
	w.Header().Set("Location", PathPrefix+b.SHA256)
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, b)
}

func (h *handler) delete(w http.ResponseWriter, digest string) {
	if err := h.s.Delete(digest); err != nil {
		writeStoreError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func tooLargeMsg(limit int64) string {
	return fmt.Sprintf("blob exceeds the limit of %d bytes", limit)
}

// writeStoreError maps store errors to statuses; anything unexpected is a
// 500 whose detail goes to the log, not to the client.
func writeStoreError(w http.ResponseWriter, err error) {
	var maxErr *http.MaxBytesError
	switch {
	case errors.Is(err, ErrBadDigest):
		writeError(w, http.StatusBadRequest, CodeBadDigest, err.Error())
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, CodeNotFound, "blob not found")
	case errors.Is(err, ErrDigestMismatch):
		writeError(w, http.StatusUnprocessableEntity, CodeDigestMismatch, err.Error())
	case errors.Is(err, ErrTooLarge):
		writeError(w, http.StatusRequestEntityTooLarge, CodeTooLarge, err.Error())
	case errors.As(err, &maxErr):
		writeError(w, http.StatusRequestEntityTooLarge, CodeTooLarge, tooLargeMsg(maxErr.Limit))
	case errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT):
		// The path in err names the disk; the request id finds the
		// server's log line.
		slog.Error("blobstore: disk full", "err", err, "request_id", w.Header().Get(requestIDHeader))
		writeError(w, http.StatusInsufficientStorage, CodeInsufficientStorage,
			fmt.Sprintf("the blobstore's disk is full: %v; free space there and try again%s", err, requestID(w)))
	default:
		slog.Error("blobstore request failed", "err", err, "request_id", w.Header().Get(requestIDHeader))
		writeError(w, http.StatusInternalServerError, CodeInternal, "internal error"+requestID(w))
	}
}

// requestIDHeader is the header the controller sets on every response
// (controller.RequestIDHeader), which a blobstore served alone lacks.
const requestIDHeader = "X-Request-Id"

// requestID is " (request ID)" for a message, or "" without one.
func requestID(w http.ResponseWriter) string {
	if id := w.Header().Get(requestIDHeader); id != "" {
		return " (request " + id + ")"
	}
	return ""
}

type errorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, errorBody{Code: code, Message: msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
