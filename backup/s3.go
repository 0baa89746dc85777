package backup

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/pierpaas/pier/api"
)

// A bucket of scheduled backups is laid out as a directory is (see
// dir.go): objects Prefix + pier-backup-<schedule>-<UTC time>.tar. An
// object appears only once the backup is whole: it is spooled to a
// local file, verified, then uploaded with its size and checksum.

func s3Client(dst *api.ClusterBackupS3) (*minio.Client, error) {
	return minio.New(dst.Endpoint, &minio.Options{
		Creds:  credentials.NewStaticV4(dst.AccessKey, dst.SecretKey, ""),
		Secure: !dst.Insecure,
		Region: dst.Region,
	})
}

// S3URL is the URL of an object of dst.
func S3URL(dst *api.ClusterBackupS3, key string) string {
	return "s3://" + dst.Bucket + "/" + key
}

// WriteS3 writes schedule's backup made at t to dst: the stream write
// writes is spooled into a temporary file in spool (the system's when
// empty), read back through Verify, and only then uploaded. It returns
// the object's URL and size.
func WriteS3(ctx context.Context, dst *api.ClusterBackupS3, spool, schedule string, t time.Time, write func(io.Writer) error) (string, int64, error) {
	cl, err := s3Client(dst)
	if err != nil {
		return "", 0, err
	}
	f, err := os.CreateTemp(spool, ".pier-backup-"+schedule+"-*.part")
	if err != nil {
		return "", 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	size, err := writeVerified(f, write)
	if err != nil {
		return "", 0, err
	}
	key := dst.Prefix + FileName(schedule, t)
	_, err = cl.PutObject(ctx, dst.Bucket, key, f, size, minio.PutObjectOptions{
		ContentType: "application/x-tar", SendContentMd5: true,
	})
	if err != nil {
		return "", 0, fmt.Errorf("backup: upload to %s: %w", S3URL(dst, key), err)
	}
	return S3URL(dst, key), size, nil
}

// ListS3 returns schedule's backups in dst, newest first.
func ListS3(ctx context.Context, dst *api.ClusterBackupS3, schedule string) ([]DirFile, error) {
	cl, err := s3Client(dst)
	if err != nil {
		return nil, err
	}
	prefix := dst.Prefix + "pier-backup-" + schedule + "-"
	var out []DirFile
	for obj := range cl.ListObjects(ctx, dst.Bucket, minio.ListObjectsOptions{Prefix: prefix}) {
		if obj.Err != nil {
			return nil, fmt.Errorf("backup: list s3://%s/%s: %w", dst.Bucket, prefix, obj.Err)
		}
		rest, ok := strings.CutPrefix(obj.Key, prefix)
		if !ok || strings.Contains(rest, "/") {
			continue
		}
		t, err := time.Parse(fileTimeLayout, strings.TrimSuffix(rest, ".tar"))
		if err != nil || !strings.HasSuffix(rest, ".tar") {
			continue
		}
		out = append(out, DirFile{Path: S3URL(dst, obj.Key), Size: obj.Size, CreatedAt: t})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.After(out[j].CreatedAt) })
	return out, nil
}

// PruneS3 removes all but the keep newest of schedule's backups in dst
// and returns those kept, newest first.
func PruneS3(ctx context.Context, dst *api.ClusterBackupS3, schedule string, keep int) ([]DirFile, error) {
	files, err := ListS3(ctx, dst, schedule)
	if err != nil {
		return nil, err
	}
	cl, err := s3Client(dst)
	if err != nil {
		return nil, err
	}
	keep = max(keep, 1)
	var errs []string
	for len(files) > keep {
		old := files[len(files)-1]
		key := strings.TrimPrefix(old.Path, "s3://"+dst.Bucket+"/")
		if err := cl.RemoveObject(ctx, dst.Bucket, key, minio.RemoveObjectOptions{}); err != nil {
			errs = append(errs, err.Error())
		}
		files = files[:len(files)-1]
	}
	if len(errs) > 0 {
		return files, fmt.Errorf("backup: prune s3://%s: %s", dst.Bucket, strings.Join(errs, "; "))
	}
	return files, nil
}
