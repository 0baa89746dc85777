package controller_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/internal/diskguard"
)

// TestUploadRefusedOnFullDisk: an upload while the server's disk is under
// pressure is refused with 507, naming the disk and the request, whose id
// is the one the server logged.
func TestUploadRefusedOnFullDisk(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	g, err := diskguard.New(diskguard.Config{Dir: dir, Low: 1 << 62, Reserve: -1}) // never enough free
	if err != nil {
		t.Fatal(err)
	}
	e.ctl.Disk = g
	body := []byte("slug")
	sum := sha256.Sum256(body)
	err = e.cli.PutBlob(ctx(t), hex.EncodeToString(sum[:]), int64(len(body)), bytes.NewReader(body))
	wantCode(t, err, api.ErrCodeInsufficientStorage, 507)
	if msg := err.Error(); !strings.Contains(msg, "uploads refused: the disk of "+dir) || !strings.Contains(msg, "(request ") {
		t.Fatalf("refusal: %v", err)
	}
}
