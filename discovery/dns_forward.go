package discovery

import (
	"bufio"
	"net"
	"os"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// WithUpstreams makes a DNSServer a resolver for jobs: names outside its
// domain are forwarded to these servers (host:port) in turn instead of
// refused. Jobs in their own network namespace cannot reach the host's
// resolver when it listens on the host's loopback, as systemd-resolved's
// does, but the server runs in the host's namespace and can.
func WithUpstreams(addrs ...string) Option {
	return func(c *config) { c.upstreams = addrs }
}

// forward asks the upstreams for a name outside the domain. It answers
// SERVFAIL when none answers, as a resolver does.
func (s *DNSServer) forward(req *dns.Msg, tcp bool) *dns.Msg {
	c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	if tcp {
		c.Net = "tcp"
	}
	for _, up := range s.cfg.upstreams {
		resp, _, err := c.Exchange(req, up)
		if err == nil && resp != nil {
			// A truncated answer goes back as it is: the job's resolver
			// retries over TCP itself.
			return resp
		}
	}
	m := new(dns.Msg)
	return m.SetRcode(req, dns.RcodeServerFailure)
}

// HostResolvers are the nameservers of the host's /etc/resolv.conf, as
// host:port, for WithUpstreams.
func HostResolvers() []string {
	f, err := os.Open("/etc/resolv.conf")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "nameserver" && net.ParseIP(fields[1]) != nil {
			out = append(out, net.JoinHostPort(fields[1], "53"))
		}
	}
	return out
}
