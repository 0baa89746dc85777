package client

import (
	"context"
	"io"
	"net/http"
	"net/url"

	"github.com/pierpaas/pier/api"
)

// ClusterBackup opens a backup of the whole cluster (package backup's
// format); the caller reads it to the end and closes it. A backup the
// server could not finish ends the stream early: read it through
// backup.Verify to know it is whole.
func (c *Controller) ClusterBackup(ctx context.Context) (io.ReadCloser, error) {
	resp, err := c.send(ctx, http.MethodGet, "/v1/cluster/backup", nil, nil)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// ScheduleClusterBackups makes or replaces the schedule name of cluster
// backups.
func (c *Controller) ScheduleClusterBackups(ctx context.Context, name string, req api.ClusterBackupScheduleRequest) (api.ClusterBackupSchedule, error) {
	var out api.ClusterBackupSchedule
	return out, c.do(ctx, http.MethodPut, "/v1/cluster/backup-schedules/"+url.PathEscape(name), req, &out)
}

// ClusterBackupSchedules lists the schedules of cluster backups with
// what each did last.
func (c *Controller) ClusterBackupSchedules(ctx context.Context) ([]api.ClusterBackupSchedule, error) {
	var out []api.ClusterBackupSchedule
	return out, c.do(ctx, http.MethodGet, "/v1/cluster/backup-schedules", nil, &out)
}

// RemoveClusterBackupSchedule stops a schedule; its files stay.
func (c *Controller) RemoveClusterBackupSchedule(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/v1/cluster/backup-schedules/"+url.PathEscape(name), nil, nil)
}
