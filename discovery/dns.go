package discovery

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Answers are only as fresh as their TTL allows, and instances come and
// go with jobs, so the TTL is short.
const defaultDNSTTL = 2

// WithDNSTTL sets the TTL of a DNSServer's answers (2 s by default),
// in whole seconds, at least 1.
func WithDNSTTL(ttl time.Duration) Option {
	return func(c *config) { c.dnsTTL = uint32(max(ttl.Round(time.Second)/time.Second, 1)) }
}

// DNSServer answers DNS queries for registered services from an in-memory
// view that a watch of the services prefix keeps current, so a query
// never waits on etcd. Names, under the server's domain D:
//
//	<service>.D                A/AAAA: every instance whose host is an IP
//	                           (hostname instances are skipped);
//	                           SRV: every instance
//	_<proto>._tcp.<service>.D  SRV: the instances whose Proto is <proto>
//	                           (RFC 2782 style; "_udp" is accepted too and
//	                           the transport label is not interpreted)
//	leader.<service>.D         A/AAAA: the service's leader
//	<id>.<service>.D           A/AAAA: one instance; the SRV target of
//	                           instances with an IP (a hostname instance's
//	                           target is its hostname)
//
// A service's own name takes precedence over the forms above (a service
// named "leader.web" hides web's leader name), and a service exists while
// it has instances: other names get NXDOMAIN (NOERROR without data for
// names that only have names below them, like "app" of "web.app"), and
// names outside D get REFUSED. Until the first list from etcd has arrived
// the server answers SERVFAIL rather than deny names it does not know yet.
type DNSServer struct {
	client *clientv3.Client
	cfg    config
	domain string

	mu       sync.RWMutex
	services map[string]map[string]Instance // service → ID → instance
	rev      int64
	ready    chan struct{}

	cancel context.CancelFunc
	addr   string
	wg     sync.WaitGroup
}

// NewDNSServer returns a server for domain (for example "pier.internal.").
// It does nothing until Start.
func NewDNSServer(client *clientv3.Client, domain string, opts ...Option) (*DNSServer, error) {
	domain = strings.ToLower(dns.Fqdn(domain))
	if _, ok := dns.IsDomainName(domain); !ok || domain == "." {
		return nil, fmt.Errorf("%w: DNS domain %q", ErrInvalidName, domain)
	}
	return &DNSServer{
		client: client, cfg: newConfig(opts), domain: domain,
		services: map[string]map[string]Instance{}, ready: make(chan struct{}),
	}, nil
}

// Start listens on addr over UDP and TCP (the same port; with port 0 one
// is picked) and serves until ctx ends or Close. It returns once both
// listeners serve; the view may still be loading, see Ready.
func (s *DNSServer) Start(ctx context.Context, addr string) error {
	pc, l, err := listenBoth(addr)
	if err != nil {
		return fmt.Errorf("discovery: dns listen %s: %w", addr, err)
	}
	ctx, s.cancel = context.WithCancel(ctx)
	s.addr = pc.LocalAddr().String()

	started := make(chan error, 2)
	servers := []*dns.Server{
		{PacketConn: pc, Handler: s, NotifyStartedFunc: func() { started <- nil }},
		{Listener: l, Handler: s, NotifyStartedFunc: func() { started <- nil }},
	}
	for _, srv := range servers {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := srv.ActivateAndServe(); err != nil {
				select {
				case started <- err:
				default:
				}
			}
		}()
	}
	for range servers {
		if err := <-started; err != nil {
			s.cancel()
			pc.Close()
			l.Close()
			return fmt.Errorf("discovery: dns serve: %w", err)
		}
	}
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		<-ctx.Done()
		for _, srv := range servers {
			srv.Shutdown()
		}
	}()
	go func() {
		defer s.wg.Done()
		follow(ctx, s.client, s.cfg.log, s.cfg.servicesPrefix(), 0, s)
	}()
	return nil
}

// listenBoth binds UDP and TCP on one port, retrying a few ports when
// asked for any port and TCP's is taken.
func listenBoth(addr string) (net.PacketConn, net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, err
	}
	for range 10 {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, err
		}
		p := pc.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(p)))
		if err == nil {
			return pc, l, nil
		}
		pc.Close()
		if port != "0" {
			return nil, nil, err
		}
	}
	return nil, nil, errors.New("no port free for both UDP and TCP")
}

// Addr returns the address Start bound, UDP and TCP alike.
func (s *DNSServer) Addr() string { return s.addr }

// Ready is closed once the view holds a first list of the services.
func (s *DNSServer) Ready() <-chan struct{} { return s.ready }

// Close stops serving and watching.
func (s *DNSServer) Close() error {
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
	return nil
}

func (s *DNSServer) listed(_ context.Context, rev int64, kvs []*mvccpb.KeyValue) error {
	services := map[string]map[string]Instance{}
	for _, kv := range kvs {
		if inst, ok := s.decode(kv); ok {
			if services[inst.Service] == nil {
				services[inst.Service] = map[string]Instance{}
			}
			services[inst.Service][inst.ID] = inst
		}
	}
	s.mu.Lock()
	s.services, s.rev = services, rev
	s.mu.Unlock()
	select {
	case <-s.ready:
	default:
		close(s.ready)
	}
	return nil
}

func (s *DNSServer) changed(_ context.Context, evs []*clientv3.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ev := range evs {
		s.rev = ev.Kv.ModRevision
		service, id, ok := s.cfg.splitKey(string(ev.Kv.Key))
		if !ok {
			continue
		}
		if ev.Type == clientv3.EventTypeDelete {
			delete(s.services[service], id)
			if len(s.services[service]) == 0 {
				delete(s.services, service)
			}
			continue
		}
		if inst, ok := s.decode(ev.Kv); ok {
			if s.services[service] == nil {
				s.services[service] = map[string]Instance{}
			}
			s.services[service][id] = inst
		}
	}
	return nil
}

func (s *DNSServer) decode(kv *mvccpb.KeyValue) (Instance, bool) {
	service, id, ok := s.cfg.splitKey(string(kv.Key))
	if !ok {
		return Instance{}, false
	}
	inst, err := decode(service, id, kv)
	if err != nil {
		s.cfg.log.Warn("dns: skipping bad instance", "err", err)
		return Instance{}, false
	}
	return inst, true
}

// ServeDNS answers one query; it makes DNSServer a dns.Handler.
func (s *DNSServer) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	_, tcp := w.RemoteAddr().(*net.TCPAddr)
	w.WriteMsg(s.answer(req, tcp))
}

func (s *DNSServer) answer(req *dns.Msg, tcp bool) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(req)
	if req.Opcode != dns.OpcodeQuery {
		return m.SetRcode(req, dns.RcodeNotImplemented)
	}
	if len(req.Question) != 1 {
		return m.SetRcode(req, dns.RcodeFormatError)
	}
	q := req.Question[0]
	name := strings.ToLower(dns.Fqdn(q.Name))
	if !dns.IsSubDomain(s.domain, name) && len(s.cfg.upstreams) > 0 {
		return s.forward(req, tcp)
	}
	if !dns.IsSubDomain(s.domain, name) || (q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY) {
		return m.SetRcode(req, dns.RcodeRefused)
	}
	select {
	case <-s.ready:
	default:
		return m.SetRcode(req, dns.RcodeServerFailure)
	}
	m.Authoritative = true
	rel := strings.TrimSuffix(strings.TrimSuffix(name, s.domain), ".")

	s.mu.RLock()
	m.Rcode = s.resolve(m, q, rel)
	serial := s.rev
	s.mu.RUnlock()
	if len(m.Answer) == 0 {
		// Negative answers carry the SOA so resolvers cache them for the
		// short TTL only (RFC 2308).
		m.Ns = append(m.Ns, s.soa(serial))
	}

	size := dns.MinMsgSize
	if opt := req.IsEdns0(); opt != nil {
		size = max(int(opt.UDPSize()), dns.MinMsgSize)
		m.SetEdns0(1232, false)
	}
	if tcp {
		size = dns.MaxMsgSize
	}
	m.Truncate(size)
	return m
}

// resolve fills m for rel, the query name without the domain, and
// returns the rcode. The caller holds s.mu for reading.
func (s *DNSServer) resolve(m *dns.Msg, q dns.Question, rel string) int {
	if rel == "" {
		if q.Qtype == dns.TypeSOA {
			m.Answer = append(m.Answer, s.soa(s.rev))
		}
		return dns.RcodeSuccess
	}
	labels := strings.Split(rel, ".")
	// A service's own name wins over the forms below, which could
	// otherwise shadow a service whose name has several labels.
	if insts, ok := s.services[rel]; ok {
		switch q.Qtype {
		case dns.TypeSRV:
			s.addSRV(m, q.Name, rel, insts, "")
		default:
			s.addAddrs(m, q, values(insts))
		}
		return dns.RcodeSuccess
	}
	if len(labels) >= 3 && strings.HasPrefix(labels[0], "_") && (labels[1] == "_tcp" || labels[1] == "_udp") {
		service := strings.Join(labels[2:], ".")
		insts, ok := s.services[service]
		if !ok {
			return s.nxdomain(labels)
		}
		if q.Qtype == dns.TypeSRV {
			s.addSRV(m, q.Name, service, insts, labels[0][1:])
		}
		return dns.RcodeSuccess
	}
	if len(labels) >= 2 {
		if insts, ok := s.services[strings.Join(labels[1:], ".")]; ok {
			if labels[0] == "leader" {
				s.addAddrs(m, q, []Instance{*oldest(insts)})
				return dns.RcodeSuccess
			}
			if inst, ok := insts[labels[0]]; ok {
				s.addAddrs(m, q, []Instance{inst})
				return dns.RcodeSuccess
			}
		}
	}
	return s.nxdomain(labels)
}

// nxdomain returns NXDOMAIN unless names exist below the queried one (an
// "empty non-terminal": "app" when "web.app" is a service, or
// "_tcp.web"): those must answer NOERROR with no data, or resolvers
// following RFC 8020 would conclude the names below do not exist either.
func (s *DNSServer) nxdomain(labels []string) int {
	rel := strings.Join(labels, ".")
	if len(labels) >= 2 && (labels[0] == "_tcp" || labels[0] == "_udp") {
		if _, ok := s.services[strings.Join(labels[1:], ".")]; ok {
			return dns.RcodeSuccess
		}
	}
	for service := range s.services {
		if strings.HasSuffix(service, "."+rel) {
			return dns.RcodeSuccess
		}
	}
	return dns.RcodeNameError
}

func (s *DNSServer) hdr(name string, t uint16) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: s.cfg.dnsTTL}
}

func (s *DNSServer) addAddrs(m *dns.Msg, q dns.Question, insts []Instance) {
	for _, inst := range insts {
		if rr := s.addrRR(q.Name, q.Qtype, inst); rr != nil {
			m.Answer = append(m.Answer, rr)
		}
	}
	// Shuffled so that clients taking the first address spread the load.
	rand.Shuffle(len(m.Answer), func(i, j int) { m.Answer[i], m.Answer[j] = m.Answer[j], m.Answer[i] })
}

// addrRR returns inst's A or AAAA record if qtype asks for its family.
func (s *DNSServer) addrRR(name string, qtype uint16, inst Instance) dns.RR {
	ip := inst.IP()
	switch {
	case ip.Is4() && (qtype == dns.TypeA || qtype == dns.TypeANY):
		return &dns.A{Hdr: s.hdr(name, dns.TypeA), A: ip.AsSlice()}
	case ip.Is6() && (qtype == dns.TypeAAAA || qtype == dns.TypeANY):
		return &dns.AAAA{Hdr: s.hdr(name, dns.TypeAAAA), AAAA: ip.AsSlice()}
	}
	return nil
}

func (s *DNSServer) addSRV(m *dns.Msg, name, service string, insts map[string]Instance, proto string) {
	for _, inst := range insts {
		if proto != "" && inst.Proto != proto {
			continue
		}
		target := inst.ID + "." + service + "." + s.domain
		if rr := s.addrRR(target, dns.TypeANY, inst); rr != nil {
			m.Extra = append(m.Extra, rr)
		} else {
			host, _, _ := net.SplitHostPort(inst.Addr)
			target = dns.Fqdn(host)
		}
		m.Answer = append(m.Answer, &dns.SRV{
			Hdr: s.hdr(name, dns.TypeSRV), Priority: 0, Weight: 10, Port: inst.Port(), Target: target,
		})
	}
}

func (s *DNSServer) soa(serial int64) dns.RR {
	return &dns.SOA{
		Hdr: s.hdr(s.domain, dns.TypeSOA), Ns: "ns." + s.domain, Mbox: "hostmaster." + s.domain,
		Serial: uint32(serial), Refresh: 3600, Retry: 600, Expire: 86400, Minttl: s.cfg.dnsTTL,
	}
}

func values(m map[string]Instance) []Instance {
	out := make([]Instance, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}
