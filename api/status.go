package api

import "time"

// ClusterStatus is GET /v1/status: whether the cluster is healthy and,
// when not, which part and why. Problems is empty when it is healthy.
type ClusterStatus struct {
	Healthy  bool           `json:"healthy"`
	Problems []string       `json:"problems"`
	Store    StoreStatus    `json:"store"`
	Servers  []ServerStatus `json:"servers"`
	Hosts    []HostHealth   `json:"hosts"`
	// Routers are the running routers (and pier up processes, which
	// route), as they registered, each probed.
	Routers []RouterHealth `json:"routers,omitempty"`
	// Leaders are the servers leading the leader-elected loops
	// ("scheduler", "deployer", "logs": the active log aggregator).
	Leaders map[string]string `json:"leaders"`
	// Deployments that failed in the last hour or run for long.
	Deployments []DeploymentHealth `json:"deployments,omitempty"`
	// Crashing are process types whose jobs keep crashing.
	Crashing []CrashingProcess `json:"crashing,omitempty"`
	// Certificates that expire within two weeks, or have.
	Certificates []CertificateHealth `json:"certificates,omitempty"`
	Checked      time.Time           `json:"checked_at"`
}

// DeploymentHealth is a deployment worth a look.
type DeploymentHealth struct {
	ID      string      `json:"id"`
	App     string      `json:"app"`
	Version int         `json:"version"`
	State   DeployState `json:"state"`
	Reason  string      `json:"reason,omitempty"`
	Since   time.Time   `json:"since"`
}

// CrashingProcess is a process type whose newest job has been restarted
// again and again and is not running.
type CrashingProcess struct {
	App         string   `json:"app"`
	ProcessType string   `json:"process_type"`
	Job         string   `json:"job"`
	Restarts    int      `json:"restarts"`
	State       JobState `json:"state"`
	Error       string   `json:"error,omitempty"`
}

// CertificateHealth is a route's certificate close to its end.
type CertificateHealth struct {
	Route    string    `json:"route"`
	Service  string    `json:"service"`
	Domain   string    `json:"domain"`
	NotAfter time.Time `json:"not_after"`
}

// StoreStatus is the etcd cluster's state.
type StoreStatus struct {
	Leader  string        `json:"leader,omitempty"`
	Members []StoreMember `json:"members"`
	Alarms  []string      `json:"alarms,omitempty"` // "NOSPACE on server-1"
}

// StoreMember is one etcd member.
type StoreMember struct {
	Name string `json:"name"`
	// Reachable is false when the member did not answer; the rest is
	// then unknown.
	Reachable  bool   `json:"reachable"`
	DBBytes    int64  `json:"db_bytes,omitempty"`
	DBInUse    int64  `json:"db_in_use_bytes,omitempty"`
	QuotaBytes int64  `json:"quota_bytes,omitempty"`
	Error      string `json:"error,omitempty"`
}

// ServerStatus is one server's own view of itself.
type ServerStatus struct {
	Name      string     `json:"name"`
	URL       string     `json:"url"`
	Reachable bool       `json:"reachable"`
	Disk      DiskStatus `json:"disk"`
	// MissingBlobs counts the kept artifacts this server lacks and no
	// live server has, at its last replication pass.
	MissingBlobs int `json:"missing_blobs"`
	// PendingBlobs counts the kept artifacts this server lacks at its
	// last replication pass (the missing ones among them), and
	// ReplicationLag is how long the oldest of them has been lacking:
	// 0 when the server holds every kept artifact.
	PendingBlobs   int      `json:"pending_blobs"`
	ReplicationLag Duration `json:"replication_lag"`
	Error          string   `json:"error,omitempty"`
}

// DiskStatus is a data directory's disk.
type DiskStatus struct {
	Dir        string `json:"dir"`
	FreeBytes  int64  `json:"free_bytes"`
	TotalBytes int64  `json:"total_bytes"`
	LowBytes   int64  `json:"low_bytes"`
	// Pressure says why the disk is low on space, "" when it is not.
	Pressure string `json:"pressure,omitempty"`
}

// HostHealth is one live host as the cluster status sees it: its
// record, its lease, and its agent's own answer.
type HostHealth struct {
	ID           string `json:"id"`
	Drained      bool   `json:"drained,omitempty"`
	DiskPressure string `json:"disk_pressure,omitempty"`
	Version      string `json:"version,omitempty"`
	// LeaseTTL is the host's lease's time to live, LeaseAge how long ago
	// the agent last renewed it: a host is lost when the age reaches the
	// TTL.
	LeaseTTL Duration `json:"lease_ttl"`
	LeaseAge Duration `json:"lease_age"`
	// Reachable says whether the agent answered; the rest is from its
	// answer (Error says why not).
	Reachable bool        `json:"reachable"`
	Error     string      `json:"error,omitempty"`
	Disk      *DiskStatus `json:"disk,omitempty"`
	// MemoryMB is what the host offers jobs, ReservedMemoryMB what its
	// running jobs reserve of it; MemAvailableMB and MemTotalMB are the
	// machine's (/proc/meminfo).
	MemoryMB         int64 `json:"memory_mb"`
	ReservedMemoryMB int64 `json:"reserved_memory_mb"`
	MemAvailableMB   int64 `json:"mem_available_mb,omitempty"`
	MemTotalMB       int64 `json:"mem_total_mb,omitempty"`
	Jobs             int   `json:"jobs"`
}

// RouterHealth is one running router.
type RouterHealth struct {
	Name    string   `json:"name"`
	Kind    NodeKind `json:"kind"`
	Version string   `json:"version"`
	// Ready says whether its /readyz answered 200; Error why not.
	Ready bool   `json:"ready"`
	Error string `json:"error,omitempty"`
}
