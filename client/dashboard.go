package client

import (
	"context"
	"net/http"

	"github.com/pierpaas/pier/api"
)

// DashboardTicket asks the server for a one-time dashboard sign-in with
// this client's key. The ticket's Path is on the server that answered:
// join it to ServerURL.
func (c *Controller) DashboardTicket(ctx context.Context) (api.DashboardTicket, error) {
	var out api.DashboardTicket
	return out, c.do(ctx, http.MethodPost, api.DashboardTicketsPath, nil, &out)
}
