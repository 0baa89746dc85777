package registry

import (
	"encoding/json"
	"net/http"
)

// Error codes of the distribution spec.
const (
	codeBlobUnknown        = "BLOB_UNKNOWN"
	codeBlobUploadInvalid  = "BLOB_UPLOAD_INVALID"
	codeBlobUploadUnknown  = "BLOB_UPLOAD_UNKNOWN"
	codeDigestInvalid      = "DIGEST_INVALID"
	codeManifestBlobUnkown = "MANIFEST_BLOB_UNKNOWN"
	codeManifestInvalid    = "MANIFEST_INVALID"
	codeManifestUnknown    = "MANIFEST_UNKNOWN"
	codeNameInvalid        = "NAME_INVALID"
	codeNameUnknown        = "NAME_UNKNOWN"
	codeSizeInvalid        = "SIZE_INVALID"
	codeUnauthorized       = "UNAUTHORIZED"
	codeDenied             = "DENIED"
	codeUnsupported        = "UNSUPPORTED"
	codeTooManyRequests    = "TOOMANYREQUESTS"
	// Not in the spec's table, but what distribution answers for a
	// server-side failure.
	codeUnknown = "UNKNOWN"
)

// regError is an error answered to the client with its status and code.
type regError struct {
	status  int
	code    string
	message string
}

func (e *regError) Error() string { return e.code + ": " + e.message }

func errorf(status int, code, msg string) *regError {
	return &regError{status: status, code: code, message: msg}
}

type errorBody struct {
	Errors []errorEntry `json:"errors"`
}

type errorEntry struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func writeError(w http.ResponseWriter, e *regError) {
	if e.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="pier"`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.status)
	json.NewEncoder(w).Encode(errorBody{Errors: []errorEntry{{Code: e.code, Message: e.message}}})
}
