package client

import (
	"context"
	"io"
	"net/http"
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
