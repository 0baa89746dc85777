package server

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pierpaas/pier/internal/join"
)

// membership admits servers into the etcd cluster for the join endpoint.
type membership struct{ c *clientv3.Client }

func (m membership) AddLearner(ctx context.Context, name, peerURL string) (string, error) {
	list, err := m.c.MemberList(ctx)
	if err != nil {
		return "", fmt.Errorf("%w: %v", join.ErrBusy, err)
	}
	found := false
	for _, mem := range list.Members {
		if slices.Contains(mem.PeerURLs, peerURL) {
			// A join retried after a crash finds its learner already there.
			if mem.Name != "" && mem.Name != name {
				return "", fmt.Errorf("%w: peer URL %s belongs to member %s", join.ErrInvalid, peerURL, mem.Name)
			}
			found = true
		} else if mem.Name == name {
			return "", fmt.Errorf("%w: a member named %s already exists", join.ErrInvalid, name)
		}
	}
	if !found {
		resp, err := m.c.MemberAddAsLearner(ctx, []string{peerURL})
		if err != nil {
			// Too many learners or not enough started members: another
			// server is joining right now.
			return "", fmt.Errorf("%w: %v", join.ErrBusy, err)
		}
		list.Members = resp.Members
	}
	var parts []string
	for _, mem := range list.Members {
		n := mem.Name
		if slices.Contains(mem.PeerURLs, peerURL) {
			n = name
		}
		if n == "" {
			continue
		}
		for _, u := range mem.PeerURLs {
			parts = append(parts, n+"="+u)
		}
	}
	return strings.Join(parts, ","), nil
}

func (m membership) ClientEndpoints(ctx context.Context) ([]string, error) {
	list, err := m.c.MemberList(ctx)
	if err != nil {
		return nil, err
	}
	var eps []string
	for _, mem := range list.Members {
		if !mem.IsLearner {
			eps = append(eps, mem.ClientURLs...)
		}
	}
	return eps, nil
}

// promote turns this server's member from learner into voter, waiting
// while etcd says the learner has not caught up yet.
func (s *Server) promote(ctx context.Context) error {
	id := s.member.ID()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		list, err := s.Client.MemberList(ctx)
		if err == nil {
			learner := false
			for _, mem := range list.Members {
				if mem.ID == id && mem.IsLearner {
					learner = true
				}
			}
			if !learner {
				return nil
			}
			if _, err = s.Client.MemberPromote(ctx, id); err == nil {
				s.cfg.Log.Info("promoted to voting etcd member")
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("server: could not become a voting etcd member: %w", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}
