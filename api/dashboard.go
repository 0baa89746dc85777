package api

import "time"

// DashboardTicketsPath is where `pier dashboard` asks a server for a
// one-time sign-in URL (POST, with the API key as for the API).
const DashboardTicketsPath = "/dashboard/tickets"

// DashboardTicket is a one-time sign-in to the dashboard: Path, on the
// server that made it, signs a browser in with the key that asked for it,
// once, until ExpiresAt.
type DashboardTicket struct {
	Path      string    `json:"path"`
	ExpiresAt time.Time `json:"expires_at"`
}
