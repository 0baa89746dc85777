package api

import "time"

// Host is a machine that runs jobs, written by its host agent and bound to
// the agent's lease: it vanishes when the agent dies or is cut off.
type Host struct {
	ID      string            `json:"id"`
	Addr    string            `json:"addr"`     // IP address jobs' ports are reached at
	APIAddr string            `json:"api_addr"` // host:port of the agent's API
	Tags    map[string]string `json:"tags,omitempty"`
	// Resources the host offers to jobs.
	CPUMillis int64     `json:"cpu_millis"`
	MemoryMB  int64     `json:"memory_mb"`
	Version   string    `json:"version"`
	Runtime   string    `json:"runtime"`
	StartedAt time.Time `json:"started_at"`
	// DiskPressure, when set, says why the host's data disk is low on
	// space; it then takes no new jobs.
	DiskPressure string `json:"disk_pressure,omitempty"`
}

// ServersService is the discovery service every server registers its API
// port under (controller, blobstore, log endpoints), by the server's
// name: how servers find each other's blobstores, and hosts another
// server when theirs is down.
const ServersService = "pier-api"

// Server is one of the cluster's servers as GET /v1/servers lists it:
// each answers the whole API.
type Server struct {
	Name string `json:"name"`
	// URL is the server's API, "https://host:port".
	URL string `json:"url"`
}

// HostInfo is a host as GET /v1/hosts lists it: its record, and what its
// jobs that have not ended reserve of it.
type HostInfo struct {
	Host
	Draining          bool  `json:"draining,omitempty"`
	Jobs              int   `json:"jobs"`
	ReservedCPUMillis int64 `json:"reserved_cpu_millis"`
	ReservedMemoryMB  int64 `json:"reserved_memory_mb"`
}

// HostDrain marks a host being emptied for maintenance: schedulers place
// nothing new on it and move its service jobs elsewhere, each stopped
// once its replacement runs. The controller writes it (the Host record
// is its agent's); deleting it makes the host usable again.
type HostDrain struct {
	Host  string    `json:"host"`
	Since time.Time `json:"since"`
}
