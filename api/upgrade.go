package api

import "time"

// Upgrade is a rolling upgrade of pier itself (`pier cluster upgrade`):
// every node's binary replaced by the one whose digest it names, one node
// at a time. The controller creates it; from then on the elected upgrade
// loop is its only writer, so a server that takes over from a dead one
// continues where it stopped.
type Upgrade struct {
	ID string `json:"id"`
	// SHA256 and Size name the new binary in the blobstore.
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	// Version is what the new binary says it is, for people ("" when the
	// CLI could not tell).
	Version string `json:"version,omitempty"`
	// Trial is how long a node runs the new binary on probation: a node
	// the loop has not confirmed healthy by then goes back to its old
	// binary by itself.
	Trial Duration `json:"trial"`
	// Drain is how long a router reports itself unready before it
	// restarts, for load balancers to stop sending it traffic.
	Drain Duration      `json:"drain"`
	State UpgradeState  `json:"state"`
	Steps []UpgradeStep `json:"steps"`
	// Reason says why an upgrade failed.
	Reason     string    `json:"reason,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
}

// UpgradeState is where an upgrade is.
type UpgradeState string

const (
	UpgradeRunning UpgradeState = "running"
	// UpgradeRollingBack: a node failed; the nodes already upgraded go
	// back to their previous binary, newest first.
	UpgradeRollingBack UpgradeState = "rolling-back"
	UpgradeComplete    UpgradeState = "complete"
	// UpgradeFailed: a node failed its checks and the upgrade was rolled
	// back; Reason says which and why.
	UpgradeFailed UpgradeState = "failed"
)

// Done reports whether the upgrade has ended.
func (s UpgradeState) Done() bool { return s == UpgradeComplete || s == UpgradeFailed }

// UpgradeStep is one node's part of an upgrade.
type UpgradeStep struct {
	Node string   `json:"node"` // NodeKey: kind/name
	Kind NodeKind `json:"kind"`
	Name string   `json:"name"`
	// From is the node's binary before the step, what a rollback puts back.
	From  string    `json:"from,omitempty"`
	State StepState `json:"state"`
	// Order is the id of the order the step gave the node; Since when
	// the step entered its state.
	Order string    `json:"order,omitempty"`
	Since time.Time `json:"since,omitzero"`
	Error string    `json:"error,omitempty"`
}

// StepState is where one node's step is.
type StepState string

const (
	StepPending StepState = "pending"
	// StepTrying: the node was told to run the new binary on probation.
	StepTrying StepState = "trying"
	// StepCommitting: the node passed the checks and was told to keep it.
	StepCommitting StepState = "committing"
	StepDone       StepState = "done"
	StepFailed     StepState = "failed"
	// StepRollingBack: a done step being undone after a later one failed.
	StepRollingBack StepState = "rolling-back"
	StepRolledBack  StepState = "rolled-back"
	// StepSkipped: the node already ran the new binary.
	StepSkipped StepState = "skipped"
)

// NodeKind is what a pier daemon is: one of the roles, or all three in
// one process (`pier up`).
type NodeKind string

const (
	NodeServer NodeKind = "server"
	NodeHost   NodeKind = "host"
	NodeRouter NodeKind = "router"
	NodeUp     NodeKind = "up"
)

// Node is a running pier daemon as it describes itself, bound to its
// lease: what the upgrade loop enumerates and watches come back.
type Node struct {
	Kind NodeKind `json:"kind"`
	Name string   `json:"name"`
	// Version is the binary's version string; SHA256 its digest, what the
	// upgrade loop compares.
	Version string `json:"version"`
	SHA256  string `json:"sha256"`
	PID     int    `json:"pid"`
	// ReadyURL is the daemon's /readyz.
	ReadyURL  string    `json:"ready_url"`
	StartedAt time.Time `json:"started_at"`
	// Trial is the order the node runs on probation ("" when it runs a
	// binary it keeps); Committed the last order it kept; Failed the last
	// order whose binary it went back from, with Error saying why.
	Trial     string `json:"trial,omitempty"`
	Committed string `json:"committed,omitempty"`
	Failed    string `json:"failed,omitempty"`
	Error     string `json:"error,omitempty"`
}

// NodeKey is a node's key under /pier/nodes/ and in an upgrade's steps.
func NodeKey(kind NodeKind, name string) string { return string(kind) + "/" + name }

// NodeOrder is what the upgrade loop tells one node: run the binary with
// this digest, on probation for Trial, or (Commit) keep it. A server
// signs it with its certificate, and a node obeys only an order signed
// by a server of its cluster: etcd lets every node write every key, so
// the signature is what keeps a host from ordering a server about.
type NodeOrder struct {
	ID     string   `json:"id"`
	Node   string   `json:"node"`
	SHA256 string   `json:"sha256"`
	Size   int64    `json:"size"`
	Trial  Duration `json:"trial"`
	Drain  Duration `json:"drain,omitempty"`
	Commit bool     `json:"commit,omitempty"`
	// Signer is the signing server's certificate (DER, base64 in JSON),
	// Signature its ECDSA signature of the order without these two.
	Signer    []byte `json:"signer,omitempty"`
	Signature []byte `json:"signature,omitempty"`
}

// UpgradeRequest is POST /v1/upgrades.
type UpgradeRequest struct {
	SHA256  string   `json:"sha256"`
	Size    int64    `json:"size"`
	Version string   `json:"version,omitempty"`
	Trial   Duration `json:"trial,omitempty"`
	Drain   Duration `json:"drain,omitempty"`
}
