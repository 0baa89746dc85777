package cli_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestRegistryConformance runs the OCI distribution-spec conformance
// suite (its own program, built from the module pier's go.mod pins as a
// tool) against the registry of a `pier up`: pull, push (monolithic,
// chunked, streamed, cross-repository mounts), content discovery (tags
// list, referrers) and deletes, in two apps' repositories, with an API
// key as the password of user pier. Only sha512 content is left out:
// pier's blobstore addresses blobs by sha256 alone.
func TestRegistryConformance(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "conformance")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/opencontainers/distribution-spec/conformance").CombinedOutput(); err != nil {
		t.Fatalf("building the conformance suite: %v\n%s", err, out)
	}
	dataDir := filepath.Join(dir, "data")
	p := startUp(t, dataDir, freeUpPorts(t))
	u := cliUser{t, p}
	u.must("create", "conf1")
	u.must("create", "conf2")
	key, err := os.ReadFile(filepath.Join(dataDir, "admin.key"))
	if err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(bin)
	cmd.Dir = dir // no oci-conformance.yaml there: the environment says it all
	results := filepath.Join(dir, "results")
	cmd.Env = append(os.Environ(),
		"OCI_REGISTRY=127.0.0.1:"+strconv.Itoa(p.apiPort),
		// The suite verifies the server's certificate with the system's
		// roots, which SSL_CERT_FILE replaces with the cluster's CA.
		"OCI_TLS=enabled", "SSL_CERT_FILE="+filepath.Join(dataDir, "pki", "ca.crt"),
		"OCI_REPO1=conf1", "OCI_REPO2=conf2",
		"OCI_USERNAME=pier", "OCI_PASSWORD="+strings.TrimSpace(string(key)),
		"OCI_RESULTS_DIR="+results,
		"OCI_API_PULL=true", "OCI_API_PUSH=true", "OCI_API_TAGS_LIST=true", "OCI_API_REFERRER=true",
		"OCI_API_BLOBS_UPLOAD_CANCEL=true",
		"OCI_DATA_SHA512=false",
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		res, _ := os.ReadFile(filepath.Join(results, "results.yaml"))
		t.Fatalf("conformance: %v\n%s\nresults.yaml:\n%s\npier up:\n%s", err, out, tail(string(res), 20000), tail(p.stderr.String(), 4000))
	}
	t.Logf("conformance:\n%s", out)
	// The suite must have run the categories, not skipped them: pull,
	// push, content discovery (and content management).
	for _, api := range []string{"Blob get", "Blob head", "Blob get range", "Manifest get by digest", "Manifest get by tag",
		"Blob push", "Blob chunked", "Blob streaming", "Blob mount", "Blob anonymous mount", "Blob upload cancel",
		"Manifest put by digest", "Manifest put by tag", "Manifest put with subject",
		"Tag listing", "Referrers", "Tag delete", "Manifest delete", "Blob delete"} {
		if !regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(api) + `\.*: *Pass$`).Match(out) {
			t.Errorf("the conformance report does not pass %q", api)
		}
	}
}
