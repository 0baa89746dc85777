package jobnet

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Ports on the gateway that jobs may reach on the host itself.
const (
	dnsPort = 53
	// RelayPort is where the host relays control-plane jobs (builds,
	// backups) to the controller API.
	RelayPort = 7300
	// VXLANPort is the overlay's (package overlay's DefaultPort).
	VXLANPort = 4789
)

// policy is the host's nftables table, inet pier-<tag>. It is written
// whole, in one atomic batch, on every change: simpler than patching sets
// and never left half-applied. Its chains:
//
//	forward     iifname pv<tag>* → from_job
//	from_job    replies pass; IPv6 dropped; for each app with jobs here:
//	            saddr ∈ its jobs and daddr ∈ its peers → accept; then the
//	            cluster range, link-local and every node → drop; a local
//	            job's source → accept (the internet); anything else (a
//	            forged source) → drop
//	input       iifname pv<tag>* → to_host: replies, DNS to the gateway,
//	            control-plane jobs to the relay; the rest → drop
//	postrouting jobs' traffic leaving the cluster range is masqueraded
type policy struct {
	h  *Host
	mu sync.Mutex
}

func openPolicy(h *Host) (*policy, error) {
	p := &policy{h: h}
	return p, p.apply(Rules{})
}

func (p *policy) table() *nftables.Table {
	return &nftables.Table{Name: "pier-" + p.h.cfg.Tag, Family: nftables.TableFamilyINet}
}

func (p *policy) close() error {
	c, err := nftables.New()
	if err != nil {
		return err
	}
	c.DelTable(p.table())
	return c.Flush()
}

// apply replaces the table with one made from r.
func (p *policy) apply(r Rules) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("jobnet: nftables: %w", err)
	}
	t := p.table()
	// Add, delete, add: the delete needs the table to exist, and the
	// whole batch commits atomically, so packets see the old rules or the
	// new ones.
	c.AddTable(t)
	c.DelTable(t)
	c.AddTable(t)
	b := &builder{c: c, t: t, h: p.h}
	if err := b.build(r); err != nil {
		return err
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("jobnet: apply policy: %w", err)
	}
	return nil
}

// Apply installs the policy for r.
func (h *Host) Apply(r Rules) error { return h.policy.apply(r) }

type builder struct {
	c     *nftables.Conn
	t     *nftables.Table
	h     *Host
	setID uint32
}

func (b *builder) set(name string, addrs []netip.Addr) (*nftables.Set, error) {
	b.setID++
	s := &nftables.Set{Table: b.t, ID: b.setID, Name: name, KeyType: nftables.TypeIPAddr}
	elems := make([]nftables.SetElement, len(addrs))
	for i, a := range addrs {
		elems[i] = nftables.SetElement{Key: a.AsSlice()}
	}
	if err := b.c.AddSet(s, elems); err != nil {
		return nil, fmt.Errorf("jobnet: set %s: %w", name, err)
	}
	return s, nil
}

func (b *builder) rule(ch *nftables.Chain, exprs ...[]expr.Any) {
	var all []expr.Any
	for _, e := range exprs {
		all = append(all, e...)
	}
	b.c.AddRule(&nftables.Rule{Table: b.t, Chain: ch, Exprs: all})
}

func (b *builder) build(r Rules) error {
	c, t, h := b.c, b.t, b.h
	accept := policyAccept()
	fromJob := c.AddChain(&nftables.Chain{Name: "from_job", Table: t})
	toHost := c.AddChain(&nftables.Chain{Name: "to_host", Table: t})
	fwd := c.AddChain(&nftables.Chain{Name: "forward", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &accept})
	in := c.AddChain(&nftables.Chain{Name: "input", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter, Policy: &accept})
	post := c.AddChain(&nftables.Chain{Name: "postrouting", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource, Policy: &accept})

	prefix := h.ifPrefix()
	b.rule(fwd, iifnamePrefix(prefix), jump("from_job"))
	b.rule(in, iifnamePrefix(prefix), jump("to_host"))
	nodes, err := b.set("nodes", r.Nodes)
	if err != nil {
		return err
	}
	if len(r.Nodes) > 0 {
		// The kernel decapsulates any VXLAN packet that reaches its port:
		// only other nodes may send one. (With no list of nodes yet, as
		// when the store is out of reach at a start, nothing is dropped
		// rather than the overlay.)
		b.rule(in, isIPv4(), l4Port(unix.IPPROTO_UDP, VXLANPort), notIPAddrIn(12, nodes), verdict(expr.VerdictDrop))
	}

	// from_job
	b.rule(fromJob, ctReplies(), verdict(expr.VerdictAccept))
	b.rule(fromJob, notIPv4(), verdict(expr.VerdictDrop))
	var locals, control []netip.Addr
	for ip, j := range r.Local {
		locals = append(locals, ip)
		if j.ControlPlane {
			control = append(control, ip)
		}
	}
	sortAddrs(locals)
	sortAddrs(control)
	for i, ap := range r.plan() {
		src, err := b.set(fmt.Sprintf("src%d", i), ap.srcs)
		if err != nil {
			return err
		}
		dst, err := b.set(fmt.Sprintf("dst%d", i), ap.dsts)
		if err != nil {
			return err
		}
		b.rule(fromJob, ipAddrIn(12, src), ipAddrIn(16, dst), verdict(expr.VerdictAccept))
	}
	b.rule(fromJob, ipAddrInPrefix(16, h.cfg.Cluster), verdict(expr.VerdictDrop))
	b.rule(fromJob, ipAddrInPrefix(16, netip.MustParsePrefix("169.254.0.0/16")), verdict(expr.VerdictDrop))
	b.rule(fromJob, ipAddrIn(16, nodes), verdict(expr.VerdictDrop))
	local, err := b.set("local", locals)
	if err != nil {
		return err
	}
	b.rule(fromJob, ipAddrIn(12, local), verdict(expr.VerdictAccept))
	b.rule(fromJob, verdict(expr.VerdictDrop))

	// to_host
	b.rule(toHost, ctReplies(), verdict(expr.VerdictAccept))
	b.rule(toHost, notIPv4(), verdict(expr.VerdictDrop))
	for _, proto := range []byte{unix.IPPROTO_UDP, unix.IPPROTO_TCP} {
		b.rule(toHost, ipAddrIs(16, h.gw), l4Port(proto, dnsPort), verdict(expr.VerdictAccept))
	}
	cp, err := b.set("control", control)
	if err != nil {
		return err
	}
	b.rule(toHost, ipAddrIn(12, cp), ipAddrIs(16, h.gw), l4Port(unix.IPPROTO_TCP, RelayPort), verdict(expr.VerdictAccept))
	b.rule(toHost, verdict(expr.VerdictDrop))

	// postrouting: the job's own address never leaves the cluster.
	b.rule(post, isIPv4(), ipAddrInPrefix(12, h.cfg.Subnet), ipAddrNotInPrefix(16, h.cfg.Cluster), []expr.Any{&expr.Masq{}})
	return nil
}

func policyAccept() nftables.ChainPolicy { return nftables.ChainPolicyAccept }

func verdict(k expr.VerdictKind) []expr.Any { return []expr.Any{&expr.Verdict{Kind: k}} }

func jump(chain string) []expr.Any {
	return []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: chain}}
}

// iifnamePrefix matches input interfaces whose name starts with prefix,
// as nft's `iifname "prefix*"` does: compare only the prefix's bytes.
func iifnamePrefix(prefix string) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte(prefix)},
	}
}

func ctReplies() []expr.Any {
	mask := make([]byte, 4)
	binary.NativeEndian.PutUint32(mask, expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED)
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
	}
}

func nfproto(op expr.CmpOp) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: op, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
	}
}

func isIPv4() []expr.Any  { return nfproto(expr.CmpOpEq) }
func notIPv4() []expr.Any { return nfproto(expr.CmpOpNeq) }

// ipAddr loads the IPv4 source (offset 12) or destination (16) address.
func ipAddr(offset uint32) expr.Any {
	return &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4}
}

func ipAddrIn(offset uint32, s *nftables.Set) []expr.Any {
	return []expr.Any{ipAddr(offset), &expr.Lookup{SourceRegister: 1, SetName: s.Name, SetID: s.ID}}
}

func notIPAddrIn(offset uint32, s *nftables.Set) []expr.Any {
	return []expr.Any{ipAddr(offset), &expr.Lookup{SourceRegister: 1, SetName: s.Name, SetID: s.ID, Invert: true}}
}

func ipAddrIs(offset uint32, a netip.Addr) []expr.Any {
	return []expr.Any{ipAddr(offset), &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: a.AsSlice()}}
}

func prefixMatch(offset uint32, p netip.Prefix, op expr.CmpOp) []expr.Any {
	p = p.Masked()
	mask := make([]byte, 4)
	binary.BigEndian.PutUint32(mask, ^uint32(0)<<(32-p.Bits()))
	return []expr.Any{
		ipAddr(offset),
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: make([]byte, 4)},
		&expr.Cmp{Op: op, Register: 1, Data: p.Addr().AsSlice()},
	}
}

func ipAddrInPrefix(offset uint32, p netip.Prefix) []expr.Any {
	return prefixMatch(offset, p, expr.CmpOpEq)
}

func ipAddrNotInPrefix(offset uint32, p netip.Prefix) []expr.Any {
	return prefixMatch(offset, p, expr.CmpOpNeq)
}

func l4Port(proto byte, port uint16) []expr.Any {
	pb := make([]byte, 2)
	binary.BigEndian.PutUint16(pb, port)
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: pb},
	}
}
