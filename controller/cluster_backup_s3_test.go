package controller_test

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/backup"
	"github.com/pierpaas/pier/controller"
	"github.com/pierpaas/pier/internal/testcluster"
)

// TestClusterBackupScheduleS3: a schedule into a bucket of an
// S3-compatible store (an in-process fake) uploads verified backups at
// each interval and keeps the newest N objects there; its secret key is
// never shown, and a schedule set again without it keeps it.
func TestClusterBackupScheduleS3(t *testing.T) {
	be := s3mem.New()
	if err := be.CreateBucket("backups"); err != nil {
		t.Fatal(err)
	}
	s3 := httptest.NewServer(gofakes3.New(be).Server())
	t.Cleanup(s3.Close)
	endpoint := strings.TrimPrefix(s3.URL, "http://")

	t0 := time.Date(2026, 2, 1, 8, 0, 0, 0, time.UTC)
	clock := &fakeClock{now: t0}
	caDir := t.TempDir()
	e := newEnvWith(t, func(tc *testcluster.Cluster, c *controller.Config) {
		if err := tc.Etcd.CA.Save(caDir); err != nil {
			t.Fatal(err)
		}
		c.CADir, c.Now, c.ServerName = caDir, clock.Now, "s1"
	})
	ctx := ctx(t)
	dst := api.ClusterBackupS3{Endpoint: endpoint, Bucket: "backups", Prefix: "pier", AccessKey: "AKID", SecretKey: "SECRET", Insecure: true}

	// A bucket without keys, or with a bad name, is refused.
	for _, bad := range []api.ClusterBackupS3{
		{Endpoint: endpoint, Bucket: "backups", Insecure: true},
		{Endpoint: endpoint, Bucket: "Not_A_Bucket", AccessKey: "a", SecretKey: "b"},
		{Endpoint: "http://" + endpoint, Bucket: "backups", AccessKey: "a", SecretKey: "b"},
	} {
		_, err := e.cli.ScheduleClusterBackups(ctx, "offsite", api.ClusterBackupScheduleRequest{Every: api.Duration(time.Hour), S3: &bad})
		wantCode(t, err, api.ErrCodeInvalid, 422)
	}
	_, err := e.cli.ScheduleClusterBackups(ctx, "offsite", api.ClusterBackupScheduleRequest{Every: api.Duration(time.Hour), S3: &dst, Dir: "/tmp"})
	wantCode(t, err, api.ErrCodeInvalid, 422)

	s, err := e.cli.ScheduleClusterBackups(ctx, "offsite", api.ClusterBackupScheduleRequest{Every: api.Duration(time.Hour), S3: &dst, Keep: 2})
	if err != nil {
		t.Fatal(err)
	}
	if s.S3 == nil || s.S3.SecretKey != "" || s.S3.Prefix != "pier/" {
		t.Fatalf("schedule as the API shows it: %+v", s.S3)
	}
	made := func(n int, at time.Time) api.ClusterBackupStatus {
		t.Helper()
		var st api.ClusterBackupStatus
		waitFor(t, "backup "+at.String(), func() bool {
			ss, err := e.cli.ClusterBackupSchedules(ctx)
			if err != nil || len(ss) != 1 {
				t.Fatalf("schedules: %+v %v", ss, err)
			}
			if ss[0].S3 == nil || ss[0].S3.SecretKey != "" {
				t.Fatalf("the list shows %+v", ss[0].S3)
			}
			st = *ss[0].Status
			return st.Made >= n || st.Failed > 0
		})
		if st.Made != n || !st.LastSuccess.Equal(at) || st.LastError != "" {
			t.Fatalf("after backup %d: %+v", n, st)
		}
		return st
	}
	made(1, t0)
	clock.Add(time.Hour)
	made(2, t0.Add(time.Hour))
	// Set again without the secret: it keeps the one it had.
	dst.SecretKey = ""
	if _, err := e.cli.ScheduleClusterBackups(ctx, "offsite", api.ClusterBackupScheduleRequest{Every: api.Duration(time.Hour), S3: &dst, Keep: 2}); err != nil {
		t.Fatal(err)
	}
	clock.Add(time.Hour)
	st := made(3, t0.Add(2*time.Hour))

	dst.SecretKey, dst.Prefix = "SECRET", s.S3.Prefix
	objs, err := backup.ListS3(ctx, &dst, "offsite")
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 2 || !objs[0].CreatedAt.Equal(t0.Add(2*time.Hour)) || !objs[1].CreatedAt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("objects kept: %+v", objs)
	}
	if len(st.Files) != 2 || st.Files[0].Path != "s3://backups/pier/"+backup.FileName("offsite", t0.Add(2*time.Hour)) {
		t.Fatalf("the status lists %+v", st.Files)
	}
	// The newest object is a whole backup.
	cl, err := minio.New(endpoint, &minio.Options{Creds: credentials.NewStaticV4("AKID", "SECRET", "")})
	if err != nil {
		t.Fatal(err)
	}
	obj, err := cl.GetObject(ctx, "backups", "pier/"+backup.FileName("offsite", t0.Add(2*time.Hour)), minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	m, err := backup.Verify(obj)
	if err != nil || !m.Has(backup.SnapshotEntry) {
		t.Fatalf("the uploaded backup: %v", err)
	}

	// A bucket that does not exist: the failure is in the status.
	missing := api.ClusterBackupS3{Endpoint: endpoint, Bucket: "nowhere", AccessKey: "a", SecretKey: "b", Insecure: true}
	if _, err := e.cli.ScheduleClusterBackups(ctx, "lost", api.ClusterBackupScheduleRequest{Every: api.Duration(time.Hour), S3: &missing}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the failure of the missing bucket", func() bool {
		ss, _ := e.cli.ClusterBackupSchedules(ctx)
		for _, s := range ss {
			if s.Name == "lost" && s.Status != nil && s.Status.Failed > 0 {
				if !strings.Contains(s.Status.LastError, "nowhere") {
					t.Fatalf("the error says %q", s.Status.LastError)
				}
				return true
			}
		}
		return false
	})
}
