package controller

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/store"
)

// MaxBodyBytes bounds a JSON request body. Artifacts go to the blobstore,
// which has its own limit; nothing sent as JSON is legitimately this big.
const MaxBodyBytes = 1 << 20

// RequestIDHeader carries the id of a request in both directions: a
// client's own id is kept (so one id follows a request across services),
// otherwise one is made up.
const RequestIDHeader = "X-Request-Id"

// statusOf maps an error code to its HTTP status.
var statusOf = map[string]int{
	api.ErrCodeUnauthenticated:     http.StatusUnauthorized,
	api.ErrCodeBadRequest:          http.StatusBadRequest,
	api.ErrCodeInvalid:             http.StatusUnprocessableEntity,
	api.ErrCodeNotFound:            http.StatusNotFound,
	api.ErrCodeConflict:            http.StatusConflict,
	api.ErrCodeTooLarge:            http.StatusRequestEntityTooLarge,
	api.ErrCodeUnavailable:         http.StatusServiceUnavailable,
	api.ErrCodeNotImplemented:      http.StatusNotImplemented,
	api.ErrCodeInternal:            http.StatusInternalServerError,
	api.ErrCodeInsufficientStorage: http.StatusInsufficientStorage,
}

func invalid(format string, args ...any) error {
	return api.Errorf(api.ErrCodeInvalid, format, args...)
}
func notFound(format string, args ...any) error {
	return api.Errorf(api.ErrCodeNotFound, format, args...)
}
func conflict(format string, args ...any) error {
	return api.Errorf(api.ErrCodeConflict, format, args...)
}
func badRequest(format string, args ...any) error {
	return api.Errorf(api.ErrCodeBadRequest, format, args...)
}

// writeError answers with err as an api.Error. Errors that are not API
// errors are internal: logged with the request id, and answered without
// their text, which may hold details a client has no business seeing.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	var ae *api.Error
	switch {
	case errors.As(err, &ae):
	case errors.Is(err, store.ErrNotFound):
		ae = api.Errorf(api.ErrCodeNotFound, "not found")
	case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrExists):
		ae = api.Errorf(api.ErrCodeConflict, "changed concurrently; try again")
	case storeUnavailable(err):
		// The etcd member this server talked to went away mid-request
		// (it is being restarted, or lost): another answers a retry.
		log.Warn("store unavailable", "method", r.Method, "path", r.URL.Path, "err", err)
		ae = api.Errorf(api.ErrCodeUnavailable, "the cluster's store is unavailable for a moment; try again")
	default:
		log.Error("request failed", "method", r.Method, "path", r.URL.Path,
			"request_id", w.Header().Get(RequestIDHeader), "err", err)
		ae = api.Errorf(api.ErrCodeInternal, "internal error (request %s)", w.Header().Get(RequestIDHeader))
	}
	status := statusOf[ae.Code]
	if status == 0 {
		status = http.StatusInternalServerError
	}
	writeJSON(w, status, ae)
}

// storeUnavailable reports whether err is the store's connection failing
// (gRPC Unavailable), as opposed to a refused or failed operation.
func storeUnavailable(err error) bool {
	var se interface{ GRPCStatus() *status.Status }
	return errors.As(err, &se) && se.GRPCStatus().Code() == codes.Unavailable
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// decode reads a JSON body into v: bounded (413 beyond MaxBodyBytes),
// strict about unknown fields (a typo is an error, not a silent no-op),
// and one value only.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			return api.Errorf(api.ErrCodeTooLarge, "request body larger than %d bytes", tooBig.Limit)
		case errors.Is(err, io.EOF):
			return badRequest("request body: expected a JSON object")
		}
		return badRequest("request body: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return api.Errorf(api.ErrCodeTooLarge, "request body larger than %d bytes", tooBig.Limit)
		}
		return badRequest("request body: more than one JSON value")
	}
	return nil
}

// requestID keeps a sane client-supplied id or makes a new one.
func requestID(r *http.Request) string {
	if id := r.Header.Get(RequestIDHeader); id != "" && len(id) <= 128 && printable(id) {
		return id
	}
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func printable(s string) bool {
	return !strings.ContainsFunc(s, func(r rune) bool { return r < 0x21 || r > 0x7e })
}

// handlerFunc is an endpoint that returns its error instead of writing it.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error
