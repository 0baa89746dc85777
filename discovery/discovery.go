package discovery

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

var (
	// ErrInvalidName reports a service name or instance ID that is not a
	// DNS name (service) or label (instance): both end up in keys and in
	// DNS answers, so they are checked before anything is written.
	ErrInvalidName = errors.New("discovery: invalid name")
	// ErrInvalidAddr reports an instance address that is not host:port.
	ErrInvalidAddr = errors.New("discovery: invalid address")
	// ErrMetaTooLarge reports instance or service metadata over its limit.
	ErrMetaTooLarge = errors.New("discovery: metadata too large")
	// ErrInvalidMeta reports service metadata that is not JSON.
	ErrInvalidMeta = errors.New("discovery: metadata is not valid JSON")
	// ErrConflict reports a compare-and-swap whose expected revision was
	// not the current one.
	ErrConflict = errors.New("discovery: revision conflict")
	// ErrNoLeader reports a service without instances, hence without leader.
	ErrNoLeader = errors.New("discovery: service has no instances")
	// ErrClosed reports a use of a closed registration.
	ErrClosed = errors.New("discovery: registration closed")
	// ErrLeaseLost reports that a registration's lease expired or was
	// revoked, so its key is gone.
	ErrLeaseLost = errors.New("discovery: lease lost")
)

// Limits. A service name stays well under DNS's 253 characters so that
// "<instance>.<service>.<domain>" still fits.
const (
	MaxMetaSize        = 4 << 10  // instance metadata, as JSON
	MaxServiceMetaSize = 16 << 10 // service metadata
	maxServiceName     = 128
	maxLabel           = 63
	defaultTTL         = 5 * time.Second
	defaultPrefix      = "/pier"
)

var (
	serviceRE = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*(\.[a-z0-9]+(-[a-z0-9]+)*)*$`)
	idRE      = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)
)

// Instance is one registered endpoint of a service.
type Instance struct {
	// ID names the instance within its service; Register generates one
	// when empty. It must be a DNS label because DNS answers use it as
	// the SRV target "<id>.<service>.<domain>".
	ID string `json:"id"`
	// Addr is "host:port"; host is an IP address or a hostname.
	Addr string `json:"addr"`
	// Proto is the application protocol ("http", "tcp", "grpc"...);
	// "tcp" when empty. DNS SRV queries select on it.
	Proto string            `json:"proto"`
	Meta  map[string]string `json:"meta,omitempty"`

	// Filled in on reads. CreateRevision orders the leader line: the
	// smallest is the leader.
	Service        string `json:"service,omitempty"`
	CreateRevision int64  `json:"create_revision,omitempty"`
	ModRevision    int64  `json:"mod_revision,omitempty"`
}

// IP returns the address's IP, or the zero Addr when the host is a name.
func (i Instance) IP() netip.Addr {
	host, _, err := net.SplitHostPort(i.Addr)
	if err != nil {
		return netip.Addr{}
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return ip.Unmap()
}

// Port returns the address's port, 0 if it has none.
func (i Instance) Port() uint16 {
	_, p, err := net.SplitHostPort(i.Addr)
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseUint(p, 10, 16)
	return uint16(n)
}

func (i Instance) clone() Instance {
	i.Meta = maps.Clone(i.Meta)
	return i
}

// record is the stored value. It is kept apart from Instance so the
// revisions and the service, which etcd already holds, are not stored.
type record struct {
	ID    string            `json:"id"`
	Addr  string            `json:"addr"`
	Proto string            `json:"proto"`
	Meta  map[string]string `json:"meta,omitempty"`
}

// Registry registers, lists and watches service instances in etcd.
type Registry struct {
	client *clientv3.Client
	cfg    config
}

type config struct {
	prefix string
	log    *slog.Logger
	dnsTTL uint32
	// upstreams answer a DNSServer's names outside its domain.
	upstreams []string
}

// Option configures a Registry or a DNSServer.
type Option func(*config)

// WithPrefix sets the root of the keyspace ("/pier" by default), so
// several clusters, or tests, can share one etcd.
func WithPrefix(prefix string) Option {
	return func(c *config) { c.prefix = strings.TrimSuffix(prefix, "/") }
}

// WithLogger sets the logger for background work (re-registration,
// watch reconnects); slog.Default() otherwise.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) { c.log = l }
}

func newConfig(opts []Option) config {
	c := config{prefix: defaultPrefix, dnsTTL: defaultDNSTTL}
	for _, o := range opts {
		o(&c)
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	c.log = c.log.With("component", "discovery")
	return c
}

// New returns a registry that uses client. Closing the client ends every
// registration and watch made through it.
func New(client *clientv3.Client, opts ...Option) *Registry {
	return &Registry{client: client, cfg: newConfig(opts)}
}

func (c config) servicesPrefix() string { return c.prefix + "/services/" }
func (c config) servicePrefix(service string) string {
	return c.servicesPrefix() + service + "/"
}
func (c config) instanceKey(service, id string) string {
	return c.servicePrefix(service) + id
}
func (c config) metaKey(service string) string { return c.prefix + "/service-meta/" + service }

// ValidService reports whether name can name a service: lowercase DNS
// labels joined by dots, each at most 63 characters.
func ValidService(name string) error {
	if len(name) == 0 || len(name) > maxServiceName || !serviceRE.MatchString(name) {
		return fmt.Errorf("%w: service %q", ErrInvalidName, name)
	}
	for _, l := range strings.Split(name, ".") {
		if len(l) > maxLabel {
			return fmt.Errorf("%w: service %q: label %q longer than %d", ErrInvalidName, name, l, maxLabel)
		}
	}
	return nil
}

// validID checks an instance ID. "leader" is reserved because
// "leader.<service>" names the service's leader in DNS.
func validID(id string) error {
	if len(id) > maxLabel || !idRE.MatchString(id) || id == "leader" {
		return fmt.Errorf("%w: instance ID %q", ErrInvalidName, id)
	}
	return nil
}

func validAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%w: %q: %v", ErrInvalidAddr, addr, err)
	}
	if host == "" {
		return fmt.Errorf("%w: %q: no host", ErrInvalidAddr, addr)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return fmt.Errorf("%w: %q: bad port", ErrInvalidAddr, addr)
	}
	return nil
}

func validMeta(meta map[string]string) error {
	b, err := json.Marshal(meta)
	if err != nil {
		return err
	}
	if len(b) > MaxMetaSize {
		return fmt.Errorf("%w: %d bytes of instance metadata, limit %d", ErrMetaTooLarge, len(b), MaxMetaSize)
	}
	return nil
}

func newID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// decode turns a stored key-value into an Instance. The ID comes from the
// key, which is authoritative, not from the value.
func decode(service, id string, kv *mvccpb.KeyValue) (Instance, error) {
	var rec record
	if err := json.Unmarshal(kv.Value, &rec); err != nil {
		return Instance{}, fmt.Errorf("discovery: instance %s/%s: %w", service, id, err)
	}
	return Instance{
		ID: id, Addr: rec.Addr, Proto: rec.Proto, Meta: rec.Meta,
		Service: service, CreateRevision: kv.CreateRevision, ModRevision: kv.ModRevision,
	}, nil
}

// splitKey splits "<prefix>/services/<service>/<id>" into its parts.
func (c config) splitKey(key string) (service, id string, ok bool) {
	rest, ok := strings.CutPrefix(key, c.servicesPrefix())
	if !ok {
		return "", "", false
	}
	i := strings.LastIndexByte(rest, '/')
	if i <= 0 || i == len(rest)-1 {
		return "", "", false
	}
	return rest[:i], rest[i+1:], true
}

// Instances lists a service's instances, oldest (the leader) first.
func (r *Registry) Instances(ctx context.Context, service string) ([]Instance, error) {
	insts, _, err := r.list(ctx, service)
	return insts, err
}

func (r *Registry) list(ctx context.Context, service string) ([]Instance, int64, error) {
	if err := ValidService(service); err != nil {
		return nil, 0, err
	}
	resp, err := r.client.Get(ctx, r.cfg.servicePrefix(service), clientv3.WithPrefix(),
		clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend))
	if err != nil {
		return nil, 0, fmt.Errorf("discovery: list %s: %w", service, err)
	}
	return r.decodeAll(service, resp.Kvs), resp.Header.Revision, nil
}

// decodeAll skips values it cannot decode: one bad writer must not hide a
// whole service.
func (r *Registry) decodeAll(service string, kvs []*mvccpb.KeyValue) []Instance {
	insts := make([]Instance, 0, len(kvs))
	for _, kv := range kvs {
		s, id, ok := r.cfg.splitKey(string(kv.Key))
		if !ok || s != service {
			continue
		}
		inst, err := decode(service, id, kv)
		if err != nil {
			r.cfg.log.Warn("skipping bad instance", "err", err)
			continue
		}
		insts = append(insts, inst)
	}
	sortByAge(insts)
	return insts
}

func sortByAge(insts []Instance) {
	slices.SortFunc(insts, func(a, b Instance) int {
		return cmp.Compare(a.CreateRevision, b.CreateRevision)
	})
}

// Leader returns the service's leader: its oldest instance.
func (r *Registry) Leader(ctx context.Context, service string) (Instance, error) {
	insts, err := r.Instances(ctx, service)
	if err != nil {
		return Instance{}, err
	}
	if len(insts) == 0 {
		return Instance{}, fmt.Errorf("%w: %s", ErrNoLeader, service)
	}
	return insts[0], nil
}
