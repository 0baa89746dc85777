package discovery

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func testDNS(t *testing.T, e *env) {
	ctx := ctxFor(t, time.Minute)
	r := e.registry(t, nil)
	srv, err := NewDNSServer(e.cli, "pier.internal", WithPrefix(prefix(t)), WithLogger(testLogger()), WithDNSTTL(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(ctx, "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	select {
	case <-srv.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("DNS view not ready")
	}

	reg := func(service, id, addr, proto string) *Registration {
		g, err := r.Register(ctx, service, Instance{ID: id, Addr: addr, Proto: proto})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { g.Close() })
		return g
	}
	a := reg("web", "a", "10.0.0.1:8080", "http")
	reg("web", "b", "10.0.0.2:8081", "http")
	reg("web", "c", "host.example:9000", "tcp")
	reg("web", "d", "[fd00::1]:7000", "grpc")
	reg("api.app", "e", "10.0.1.1:80", "http")

	for _, net := range []string{"udp", "tcp"} {
		q := &querier{t: t, addr: srv.Addr(), client: &dns.Client{Net: net, Timeout: 2 * time.Second}}
		t.Run(net, func(t *testing.T) {
			q.t = t
			// The view follows the store in order: once the last
			// registration shows, every earlier one does.
			q.eventually("api.app.pier.internal.", dns.TypeA, dns.RcodeSuccess, "10.0.1.1")
			q.eventually("web.pier.internal.", dns.TypeA, dns.RcodeSuccess, "10.0.0.1", "10.0.0.2")
			m := q.expect("WEB.Pier.Internal.", dns.TypeA, dns.RcodeSuccess, "10.0.0.1", "10.0.0.2")
			if !m.Authoritative || m.Answer[0].Header().Ttl != 1 || m.Answer[0].Header().Name != "WEB.Pier.Internal." {
				t.Errorf("answer header %v (authoritative %v)", m.Answer[0].Header(), m.Authoritative)
			}
			q.expect("web.pier.internal.", dns.TypeAAAA, dns.RcodeSuccess, "fd00::1")
			m = q.expect("web.pier.internal.", dns.TypeSRV, dns.RcodeSuccess,
				"0 10 8080 a.web.pier.internal.", "0 10 8081 b.web.pier.internal.",
				"0 10 9000 host.example.", "0 10 7000 d.web.pier.internal.")
			if got := rdata(m.Extra); !slices.Equal(got, []string{"10.0.0.1", "10.0.0.2", "fd00::1"}) {
				t.Errorf("SRV additional %v", got)
			}
			q.expect("_http._tcp.web.pier.internal.", dns.TypeSRV, dns.RcodeSuccess,
				"0 10 8080 a.web.pier.internal.", "0 10 8081 b.web.pier.internal.")
			q.expect("_tcp._tcp.web.pier.internal.", dns.TypeSRV, dns.RcodeSuccess, "0 10 9000 host.example.")
			q.expect("_smtp._tcp.web.pier.internal.", dns.TypeSRV, dns.RcodeSuccess) // no data
			q.expect("leader.web.pier.internal.", dns.TypeA, dns.RcodeSuccess, "10.0.0.1")
			q.expect("b.web.pier.internal.", dns.TypeA, dns.RcodeSuccess, "10.0.0.2")
			q.expect("api.app.pier.internal.", dns.TypeA, dns.RcodeSuccess, "10.0.1.1")
			q.expect("app.pier.internal.", dns.TypeA, dns.RcodeSuccess)      // empty non-terminal
			q.expect("_tcp.web.pier.internal.", dns.TypeA, dns.RcodeSuccess) // empty non-terminal
			m = q.expect("nope.pier.internal.", dns.TypeA, dns.RcodeNameError)
			if len(m.Ns) != 1 || m.Ns[0].Header().Rrtype != dns.TypeSOA {
				t.Errorf("NXDOMAIN without SOA: %v", m.Ns)
			}
			q.expect("x.web.pier.internal.", dns.TypeA, dns.RcodeNameError)
			q.expect("_http._tcp.nope.pier.internal.", dns.TypeSRV, dns.RcodeNameError)
			q.expect("example.com.", dns.TypeA, dns.RcodeRefused)
			q.expect("pier.internal.", dns.TypeSOA, dns.RcodeSuccess, "ns.pier.internal.")
		})
	}

	// Answers follow registrations.
	q := &querier{t: t, addr: srv.Addr(), client: &dns.Client{Timeout: 2 * time.Second}}
	a.Close()
	q.eventually("web.pier.internal.", dns.TypeA, dns.RcodeSuccess, "10.0.0.2")
	q.expect("leader.web.pier.internal.", dns.TypeA, dns.RcodeSuccess, "10.0.0.2")
	q.expect("a.web.pier.internal.", dns.TypeA, dns.RcodeNameError)
	reg("web", "f", "10.0.0.6:80", "http")
	q.eventually("web.pier.internal.", dns.TypeA, dns.RcodeSuccess, "10.0.0.2", "10.0.0.6")
	reg("new", "g", "10.0.2.1:80", "http")
	q.eventually("new.pier.internal.", dns.TypeA, dns.RcodeSuccess, "10.0.2.1")

	// Many instances: UDP answers truncate, TCP answers carry them all.
	var want []string
	for i := range 100 {
		reg("big", fmt.Sprintf("i%d", i), fmt.Sprintf("10.1.0.%d:80", i), "http")
		want = append(want, fmt.Sprintf("10.1.0.%d", i))
	}
	tcp := &querier{t: t, addr: srv.Addr(), client: &dns.Client{Net: "tcp", Timeout: 2 * time.Second}}
	tcp.eventually("big.pier.internal.", dns.TypeA, dns.RcodeSuccess, want...)
	udp := &querier{t: t, addr: srv.Addr(), client: &dns.Client{Net: "udp", Timeout: 2 * time.Second}}
	m := udp.query("big.pier.internal.", dns.TypeA)
	if !m.Truncated || len(m.Answer) == 0 || len(m.Answer) >= 100 {
		t.Errorf("UDP answer: truncated %v with %d records", m.Truncated, len(m.Answer))
	}
}

type querier struct {
	t      *testing.T
	addr   string
	client *dns.Client
}

func (q *querier) query(name string, qtype uint16) *dns.Msg {
	q.t.Helper()
	req := new(dns.Msg)
	req.SetQuestion(name, qtype)
	m, _, err := q.client.Exchange(req, q.addr)
	if err != nil {
		q.t.Fatalf("%s %s: %v", name, dns.TypeToString[qtype], err)
	}
	return m
}

func (q *querier) check(name string, qtype uint16, rcode int, want ...string) (*dns.Msg, error) {
	m := q.query(name, qtype)
	got := rdata(m.Answer)
	slices.Sort(want)
	if m.Rcode != rcode || !slices.Equal(got, want) {
		return m, fmt.Errorf("%s %s: %s %v, want %s %v", name, dns.TypeToString[qtype],
			dns.RcodeToString[m.Rcode], got, dns.RcodeToString[rcode], want)
	}
	return m, nil
}

func (q *querier) expect(name string, qtype uint16, rcode int, want ...string) *dns.Msg {
	q.t.Helper()
	m, err := q.check(name, qtype, rcode, want...)
	if err != nil {
		q.t.Error(err)
	}
	return m
}

// eventually waits for the server's view to catch up with etcd.
func (q *querier) eventually(name string, qtype uint16, rcode int, want ...string) {
	q.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		_, err := q.check(name, qtype, rcode, want...)
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			q.t.Fatal(err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// rdata returns the records' data, sorted.
func rdata(rrs []dns.RR) []string {
	out := []string{}
	for _, rr := range rrs {
		switch rr := rr.(type) {
		case *dns.A:
			out = append(out, rr.A.String())
		case *dns.AAAA:
			out = append(out, rr.AAAA.String())
		case *dns.SRV:
			out = append(out, fmt.Sprintf("%d %d %d %s", rr.Priority, rr.Weight, rr.Port, rr.Target))
		case *dns.SOA:
			out = append(out, rr.Ns)
		case *dns.OPT:
		default:
			out = append(out, rr.String())
		}
	}
	slices.Sort(out)
	return out
}
