package registry

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pierpaas/pier/blobstore"
)

// maxManifest bounds a manifest, as distribution does.
const maxManifest = 4 << 20

const (
	mtOCIIndex    = "application/vnd.oci.image.index.v1+json"
	mtOCIManifest = "application/vnd.oci.image.manifest.v1+json"
	mtDockerList  = "application/vnd.docker.distribution.manifest.list.v2+json"
)

type descriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       string            `json:"digest"`
	Size         int64             `json:"size"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	URLs         []string          `json:"urls,omitempty"`
}

// manifestDoc is the union of an image manifest and an index: the fields
// the registry looks at.
type manifestDoc struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	ArtifactType  string            `json:"artifactType"`
	Config        *descriptor       `json:"config"`
	Layers        []descriptor      `json:"layers"`
	Manifests     []descriptor      `json:"manifests"`
	Subject       *descriptor       `json:"subject"`
	Annotations   map[string]string `json:"annotations"`
}

func (h *handler) manifest(w http.ResponseWriter, r *http.Request, req request) error {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		return h.getManifest(w, r, req)
	case http.MethodPut:
		return h.putManifest(w, r, req)
	case http.MethodDelete:
		return h.deleteManifest(w, r, req)
	}
	return methodNotAllowed(w, "GET, HEAD, PUT, DELETE")
}

// resolve turns a tag or digest into the hex digest of a manifest of
// the repository.
func (h *handler) resolve(r *http.Request, req request) (string, Manifest, error) {
	var hex string
	if strings.Contains(req.ref, ":") {
		var err error
		if hex, err = parseDigest(req.ref); err != nil {
			return "", Manifest{}, err
		}
	} else {
		if !tagRE.MatchString(req.ref) {
			return "", Manifest{}, errorf(http.StatusBadRequest, codeManifestInvalid, "invalid tag "+req.ref)
		}
		t, ok, err := h.meta.tag(r.Context(), req.name, req.ref)
		if err != nil {
			return "", Manifest{}, err
		}
		if !ok {
			return "", Manifest{}, errorf(http.StatusNotFound, codeManifestUnknown, "no tag "+req.ref+" in "+req.name)
		}
		hex = strings.TrimPrefix(t.Digest, "sha256:")
	}
	m, ok, err := h.meta.manifest(r.Context(), req.name, hex)
	if err != nil {
		return "", Manifest{}, err
	}
	if !ok {
		return "", Manifest{}, errorf(http.StatusNotFound, codeManifestUnknown, "manifest unknown to repository "+req.name)
	}
	return hex, m, nil
}

func (h *handler) getManifest(w http.ResponseWriter, r *http.Request, req request) error {
	hex, m, err := h.resolve(r, req)
	if err != nil {
		return err
	}
	f, b, err := h.openBlob(r.Context(), hex)
	if errors.Is(err, blobstore.ErrNotFound) {
		return errorf(http.StatusNotFound, codeManifestUnknown, "manifest not found on any server")
	}
	if err != nil {
		return err
	}
	defer f.Close()
	hdr := w.Header()
	hdr.Set("Content-Type", m.MediaType)
	hdr.Set("Content-Length", strconv.FormatInt(b.Size, 10))
	hdr.Set("Docker-Content-Digest", "sha256:"+hex)
	hdr.Set("ETag", `"sha256:`+hex+`"`)
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		io.Copy(w, f)
	}
	return nil
}

func (h *handler) putManifest(w http.ResponseWriter, r *http.Request, req request) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxManifest+1))
	if err != nil {
		return err
	}
	if len(body) > maxManifest {
		return errorf(http.StatusRequestEntityTooLarge, codeSizeInvalid, fmt.Sprintf("manifest larger than %d bytes", maxManifest))
	}
	sum := sha256.Sum256(body)
	hex := hex.EncodeToString(sum[:])
	tag := ""
	if strings.Contains(req.ref, ":") {
		want, err := parseDigest(req.ref)
		if err != nil {
			return err
		}
		if want != hex {
			return errorf(http.StatusBadRequest, codeDigestInvalid, "the manifest does not match the digest "+req.ref)
		}
	} else {
		if !tagRE.MatchString(req.ref) {
			return errorf(http.StatusBadRequest, codeManifestInvalid, "invalid tag "+req.ref)
		}
		tag = req.ref
	}
	var doc manifestDoc
	if err := json.Unmarshal(body, &doc); err != nil {
		return errorf(http.StatusBadRequest, codeManifestInvalid, "the manifest is not JSON: "+err.Error())
	}
	mediaType := r.Header.Get("Content-Type")
	if mediaType == "" {
		mediaType = doc.MediaType
	}
	if doc.MediaType != "" && doc.MediaType != mediaType {
		return errorf(http.StatusBadRequest, codeManifestInvalid, fmt.Sprintf("the manifest's mediaType %s is not its Content-Type %s", doc.MediaType, mediaType))
	}
	if doc.SchemaVersion != 2 {
		return errorf(http.StatusBadRequest, codeManifestInvalid, "schemaVersion must be 2")
	}
	refs, err := h.checkReferences(r, req, mediaType, &doc)
	if err != nil {
		return err
	}
	if _, err := h.cfg.Blobs.Put(r.Context(), bytes.NewReader(body), hex); err != nil {
		return err
	}
	m := Manifest{MediaType: mediaType, Size: int64(len(body)), ArtifactType: doc.ArtifactType,
		Blobs: refs, CreatedAt: time.Now().UTC()}
	if m.ArtifactType == "" && doc.Config != nil && mediaType == mtOCIManifest {
		m.ArtifactType = doc.Config.MediaType
	}
	if doc.Subject != nil {
		if _, err := parseDigest(doc.Subject.Digest); err != nil {
			return errorf(http.StatusBadRequest, codeManifestInvalid, "invalid subject digest")
		}
		m.Subject = doc.Subject.Digest
		w.Header().Set("OCI-Subject", doc.Subject.Digest)
	}
	if err := h.meta.putManifest(r.Context(), req.name, hex, m, tag); err != nil {
		return err
	}
	w.Header().Set("Location", "/v2/"+req.name+"/manifests/sha256:"+hex)
	w.Header().Set("Docker-Content-Digest", "sha256:"+hex)
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	return nil
}

// checkReferences refuses a manifest whose blobs (an image's config and
// layers) or manifests (an index's) the repository lacks, and returns
// their digests. Layers a registry never holds (non-distributable, with
// URLs) are not required.
func (h *handler) checkReferences(r *http.Request, req request, mediaType string, doc *manifestDoc) ([]string, error) {
	var refs []string
	check := func(d descriptor, isManifest bool) error {
		hex, err := parseDigest(d.Digest)
		if err != nil {
			return errorf(http.StatusBadRequest, codeManifestInvalid, "invalid digest in the manifest: "+d.Digest)
		}
		var ok bool
		if isManifest {
			_, ok, err = h.meta.manifest(r.Context(), req.name, hex)
		} else {
			_, ok, err = h.meta.blob(r.Context(), req.name, hex)
		}
		if err != nil {
			return err
		}
		if !ok {
			return errorf(http.StatusBadRequest, codeManifestBlobUnkown, "the manifest references "+d.Digest+", which was not pushed to "+req.name)
		}
		refs = append(refs, hex)
		return nil
	}
	switch mediaType {
	case mtOCIIndex, mtDockerList:
		for _, d := range doc.Manifests {
			if err := check(d, true); err != nil {
				return nil, err
			}
		}
	default:
		if doc.Config == nil {
			return nil, errorf(http.StatusBadRequest, codeManifestInvalid, "an image manifest needs a config")
		}
		if err := check(*doc.Config, false); err != nil {
			return nil, err
		}
		for _, l := range doc.Layers {
			if len(l.URLs) > 0 || strings.Contains(l.MediaType, "nondistributable") || strings.Contains(l.MediaType, "foreign") {
				continue
			}
			if err := check(l, false); err != nil {
				return nil, err
			}
		}
	}
	return refs, nil
}

func (h *handler) deleteManifest(w http.ResponseWriter, r *http.Request, req request) error {
	var ok bool
	var err error
	if strings.Contains(req.ref, ":") {
		hex, perr := parseDigest(req.ref)
		if perr != nil {
			return perr
		}
		ok, err = h.meta.deleteManifest(r.Context(), req.name, hex)
	} else {
		if !tagRE.MatchString(req.ref) {
			return errorf(http.StatusBadRequest, codeManifestInvalid, "invalid tag "+req.ref)
		}
		ok, err = h.meta.deleteTag(r.Context(), req.name, req.ref)
	}
	if err != nil {
		return err
	}
	if !ok {
		return errorf(http.StatusNotFound, codeManifestUnknown, req.ref+" unknown to repository "+req.name)
	}
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// tagsList answers the repository's tags in lexical order, n at a time
// after last, with a Link to the next page.
func (h *handler) tagsList(w http.ResponseWriter, r *http.Request, req request) error {
	items, err := h.meta.tags(r.Context(), req.name)
	if err != nil {
		return err
	}
	tags := make([]string, 0, len(items))
	for _, it := range items {
		tags = append(tags, it.Key[strings.LastIndexByte(it.Key, '/')+1:])
	}
	sort.Strings(tags)
	q := r.URL.Query()
	if last := q.Get("last"); last != "" {
		i := sort.SearchStrings(tags, last)
		if i < len(tags) && tags[i] == last {
			i++
		}
		tags = tags[i:]
	}
	if ns := q.Get("n"); ns != "" {
		n, err := strconv.Atoi(ns)
		if err != nil || n < 0 {
			return errorf(http.StatusBadRequest, codeUnsupported, "invalid n "+ns)
		}
		if n < len(tags) {
			tags = tags[:n]
			if n > 0 {
				v := url.Values{"n": {ns}, "last": {tags[n-1]}}
				w.Header().Set("Link", fmt.Sprintf(`</v2/%s/tags/list?%s>; rel="next"`, req.name, v.Encode()))
			}
		}
	}
	writeJSON(w, "application/json", struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}{req.name, tags})
	return nil
}

// referrers answers the manifests of the repository whose subject is the
// digest, as an index, filtered by artifactType if asked.
func (h *handler) referrers(w http.ResponseWriter, r *http.Request, req request) error {
	if _, err := parseDigest(req.ref); err != nil {
		return err
	}
	all, err := h.meta.manifests(r.Context(), req.name)
	if err != nil {
		return err
	}
	filter := r.URL.Query().Get("artifactType")
	descs := []descriptor{}
	for hex, m := range all {
		if m.Subject != req.ref || (filter != "" && m.ArtifactType != filter) {
			continue
		}
		ann, err := h.annotations(r, hex)
		if err != nil {
			return err
		}
		descs = append(descs, descriptor{MediaType: m.MediaType, Digest: "sha256:" + hex, Size: m.Size,
			ArtifactType: m.ArtifactType, Annotations: ann})
	}
	sort.Slice(descs, func(i, j int) bool { return descs[i].Digest < descs[j].Digest })
	if filter != "" {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	writeJSON(w, mtOCIIndex, struct {
		SchemaVersion int          `json:"schemaVersion"`
		MediaType     string       `json:"mediaType"`
		Manifests     []descriptor `json:"manifests"`
	}{2, mtOCIIndex, descs})
	return nil
}

// annotations reads a manifest's annotations from its bytes.
func (h *handler) annotations(r *http.Request, hex string) (map[string]string, error) {
	f, _, err := h.openBlob(r.Context(), hex)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var doc struct {
		Annotations map[string]string `json:"annotations"`
	}
	if err := json.NewDecoder(io.LimitReader(f, maxManifest)).Decode(&doc); err != nil {
		return nil, fmt.Errorf("registry: manifest %s: %w", hex, err)
	}
	return doc.Annotations, nil
}

func writeJSON(w http.ResponseWriter, contentType string, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}
