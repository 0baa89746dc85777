package agent

import (
	"context"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/pierpaas/pier/discovery"
)

// services keeps jobs' healthy ports registered in discovery on the host's
// lease. Registrations on a shared lease are not renewed by discovery when
// the lease is lost, so services remembers what should be registered and
// registers it all again on each new lease.
type services struct {
	reg *discovery.Registry
	log interface {
		Warn(string, ...any)
	}

	mu      sync.Mutex
	session *discovery.Session
	want    map[string]wantedInstance
	regs    map[string]*discovery.Registration
}

type wantedInstance struct {
	service string
	inst    discovery.Instance
}

func newServices(reg *discovery.Registry, log interface{ Warn(string, ...any) }) *services {
	return &services{reg: reg, log: log, want: map[string]wantedInstance{}, regs: map[string]*discovery.Registration{}}
}

// instanceID names a job's port in discovery: the job id for its first
// port, and id-N for the others.
func instanceID(jobID string, port int) string {
	if port == 0 {
		return jobID
	}
	return jobID + "-" + strconv.Itoa(port)
}

// set registers an instance (again) and remembers it for later leases.
func (s *services) set(service string, inst discovery.Instance) {
	s.mu.Lock()
	s.want[inst.ID] = wantedInstance{service, inst}
	sess := s.session
	s.mu.Unlock()
	if sess != nil {
		s.register(sess, service, inst)
	}
}

// unset deregisters an instance at once: the first step of stopping a job,
// so routers stop sending it requests before it gets SIGTERM. It reports
// whether the instance was registered.
func (s *services) unset(id string) bool {
	s.mu.Lock()
	delete(s.want, id)
	r := s.regs[id]
	delete(s.regs, id)
	s.mu.Unlock()
	if r != nil {
		r.Close()
	}
	return r != nil
}

// newSession registers every wanted instance on a new lease.
func (s *services) newSession(sess *discovery.Session) {
	s.mu.Lock()
	s.session = sess
	want := make([]wantedInstance, 0, len(s.want))
	for _, w := range s.want {
		want = append(want, w)
	}
	s.mu.Unlock()
	for _, w := range want {
		s.register(sess, w.service, w.inst)
	}
}

func (s *services) register(sess *discovery.Session, service string, inst discovery.Instance) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := s.reg.Register(ctx, service, inst, discovery.WithSession(sess))
	if err != nil {
		// The next lease registers it again; until then the job is simply
		// not in discovery, which is the safe side.
		s.log.Warn("cannot register job in discovery", "service", service, "instance", inst.ID, "err", err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, still := s.want[inst.ID]; !still {
		go r.Close() // unset raced with this registration
		return
	}
	s.regs[inst.ID] = r
}

func hostPort(ip string, port int) string { return net.JoinHostPort(ip, strconv.Itoa(port)) }
