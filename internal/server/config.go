package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pierpaas/pier/internal/pki"
)

// Default ports of the server role.
const (
	DefaultClientPort = 2379 // etcd clients (mutual TLS)
	DefaultPeerPort   = 2380 // etcd peers (mutual TLS)
	DefaultAPIPort    = 7300 // join, health, metrics; later the controller API
	DefaultDNSPort    = 8053 // discovery DNS
	DefaultGitSSHPort = 2222 // git push over SSH
)

// DNSDomain is the zone the discovery DNS server answers for.
const DNSDomain = "pier.internal."

// Config configures a server.
type Config struct {
	DataDir string
	// Name identifies the server among etcd members; the host name by default.
	Name string
	// AdvertiseIP is the address other nodes reach this server at; every
	// port binds to it. 127.0.0.1 by default, for a single machine.
	AdvertiseIP                            string
	ClientPort, PeerPort, APIPort, DNSPort int
	// GitSSHPort is where the git receiver takes pushes over SSH; 0 turns
	// SSH off (git over HTTPS, on the API port, stays).
	GitSSHPort int
	// Join lists the API addresses (host:port) of existing servers; with
	// Token it makes this server join their cluster on first start.
	Join  []string
	Token string
	// EtcdEndpoints, when set, uses an external etcd cluster instead of an
	// embedded member. It must trust this cluster's CA for client
	// certificates, and its server certificate must be signed by EtcdCA
	// (the cluster CA when empty).
	EtcdEndpoints []string
	EtcdCA        string
	// EtcdLogLevel is etcd's own log level ("error" by default).
	EtcdLogLevel string

	// AppURL is where an app's web process answers through the router,
	// with {app} for its name ("http://{app}.example.com"); empty when
	// no router serves the cluster's domain.
	AppURL string
	// TCPPortRange is the router ports TCP routes may take (the
	// controller's default when zero).
	TCPPortRange [2]int

	// Restore is a backup file (package backup) to restore into DataDir,
	// which must be empty, before the server starts: see StageRestore.
	// Routes move to AppURL's domain.
	Restore string

	// DiskLow and DiskReserve are the data disk's pressure threshold and
	// reserve in bytes (internal/diskguard's defaults when 0).
	DiskLow, DiskReserve int64

	Log      *slog.Logger
	Registry *prometheus.Registry
}

var nameRE = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)

func (c *Config) setDefaults() error {
	if c.DataDir == "" {
		return errors.New("server: no data directory")
	}
	if c.Name == "" {
		h, _ := os.Hostname()
		c.Name = SanitizeName(h)
	}
	if len(c.Name) > 63 || !nameRE.MatchString(c.Name) {
		return fmt.Errorf("server: name %q must be lower-case letters, digits and dashes", c.Name)
	}
	if c.AdvertiseIP == "" {
		c.AdvertiseIP = "127.0.0.1"
	}
	if ip := net.ParseIP(c.AdvertiseIP); ip == nil || ip.IsUnspecified() {
		return fmt.Errorf("server: advertise address %q must be a concrete IP", c.AdvertiseIP)
	}
	setPort(&c.ClientPort, DefaultClientPort)
	setPort(&c.PeerPort, DefaultPeerPort)
	setPort(&c.APIPort, DefaultAPIPort)
	setPort(&c.DNSPort, DefaultDNSPort)
	if len(c.Join) > 0 && c.Token == "" {
		return errors.New("server: joining needs a token (pier token --role server on an existing server)")
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	if c.Registry == nil {
		c.Registry = prometheus.NewRegistry()
	}
	return nil
}

func setPort(p *int, def int) {
	if *p == 0 {
		*p = def
	}
}

func (c *Config) addr(port int) string {
	return net.JoinHostPort(c.AdvertiseIP, strconv.Itoa(port))
}

// APIAddr is the host:port of the API listener.
func (c *Config) APIAddr() string { return c.addr(c.APIPort) }

func (c *Config) clientURL() string { return "https://" + c.addr(c.ClientPort) }
func (c *Config) peerURL() string   { return "https://" + c.addr(c.PeerPort) }

// PKIDir is where a data directory keeps its credentials.
func PKIDir(dataDir string) string { return filepath.Join(dataDir, "pki") }

func (c *Config) pkiDir() string  { return PKIDir(c.DataDir) }
func (c *Config) etcdDir() string { return filepath.Join(c.DataDir, "etcd") }
func (c *Config) blobDir() string { return filepath.Join(c.DataDir, "blobs") }

// AdminKeyPath is where the server that created the cluster's first API
// key left it for the operator.
func (c *Config) AdminKeyPath() string { return filepath.Join(c.DataDir, "admin.key") }

// SanitizeName turns a host name into a valid node name.
func SanitizeName(h string) string {
	h = strings.ToLower(strings.Split(h, ".")[0])
	h = regexp.MustCompile(`[^a-z0-9]+`).ReplaceAllString(h, "-")
	h = strings.Trim(h, "-")
	if h == "" {
		h = "server"
	}
	if len(h) > 63 {
		h = strings.TrimRight(h[:63], "-")
	}
	return h
}

// state is what a server must remember between starts beyond etcd's own
// data: how its member was meant to start, in case it stops before etcd
// has written anything.
type state struct {
	Name           string `json:"name"`
	InitialCluster string `json:"initial_cluster"`
	ClusterState   string `json:"cluster_state"`
	// Endpoints are the other members' client URLs when this server joined;
	// its own member cannot answer until it has been promoted.
	Endpoints []string `json:"endpoints,omitempty"`
}

func (c *Config) statePath() string { return filepath.Join(c.DataDir, "server.json") }

func (c *Config) loadState() (*state, error) {
	b, err := os.ReadFile(c.statePath())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var s state
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("server: corrupt %s: %w", c.statePath(), err)
	}
	return &s, nil
}

func (c *Config) saveState(s *state) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return pki.WriteFile(c.statePath(), b)
}

// Tokens reads the join tokens from a server's data directory, for
// `pier token`; the server need not be running.
func Tokens(dataDir string) (server, host pki.Token, err error) {
	ca, err := pki.LoadCA(PKIDir(dataDir))
	if err != nil {
		return server, host, fmt.Errorf("no server credentials in %s: %w", dataDir, err)
	}
	if server, err = pki.LoadOrCreateToken(PKIDir(dataDir), ca, pki.RoleServer); err != nil {
		return
	}
	host, err = pki.LoadOrCreateToken(PKIDir(dataDir), ca, pki.RoleHost)
	return
}
