package discovery

import (
	"context"
	"encoding/json"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// ServiceMeta is a service's shared metadata: a small JSON document that
// outlives its instances (a database appliance keeps its primary's
// identity and replication settings there, for example).
type ServiceMeta struct {
	Data json.RawMessage
	// Revision is the etcd revision of the last write, 0 if none: pass it
	// back to SetServiceMeta to write only over what was read.
	Revision int64
}

// GetServiceMeta reads a service's metadata. A service without any
// returns Revision 0 and no error, so a read-modify-write loop needs no
// special first case.
func (r *Registry) GetServiceMeta(ctx context.Context, service string) (ServiceMeta, error) {
	if err := ValidService(service); err != nil {
		return ServiceMeta{}, err
	}
	resp, err := r.client.Get(ctx, r.cfg.metaKey(service))
	if err != nil {
		return ServiceMeta{}, fmt.Errorf("discovery: get service meta %s: %w", service, err)
	}
	if len(resp.Kvs) == 0 {
		return ServiceMeta{}, nil
	}
	kv := resp.Kvs[0]
	return ServiceMeta{Data: kv.Value, Revision: kv.ModRevision}, nil
}

// SetServiceMeta writes a service's metadata if its revision is still
// prevRevision (0: if it has none) and returns the new revision. A
// mismatch returns ErrConflict and writes nothing; re-read and retry.
func (r *Registry) SetServiceMeta(ctx context.Context, service string, data []byte, prevRevision int64) (int64, error) {
	if err := ValidService(service); err != nil {
		return 0, err
	}
	if len(data) > MaxServiceMetaSize {
		return 0, fmt.Errorf("%w: %d bytes of service metadata, limit %d", ErrMetaTooLarge, len(data), MaxServiceMetaSize)
	}
	if !json.Valid(data) {
		return 0, fmt.Errorf("%w: service %s", ErrInvalidMeta, service)
	}
	key := r.cfg.metaKey(service)
	// A missing key compares as ModRevision 0, so one comparison covers
	// both "must not exist" and "must be unchanged".
	resp, err := r.client.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", prevRevision)).
		Then(clientv3.OpPut(key, string(data))).
		Commit()
	if err != nil {
		return 0, fmt.Errorf("discovery: set service meta %s: %w", service, err)
	}
	if !resp.Succeeded {
		return 0, fmt.Errorf("%w: service meta %s is not at revision %d", ErrConflict, service, prevRevision)
	}
	return resp.Header.Revision, nil
}

// DeleteServiceMeta deletes a service's metadata if its revision is
// still prevRevision; ErrConflict otherwise.
func (r *Registry) DeleteServiceMeta(ctx context.Context, service string, prevRevision int64) error {
	if err := ValidService(service); err != nil {
		return err
	}
	key := r.cfg.metaKey(service)
	resp, err := r.client.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", prevRevision)).
		Then(clientv3.OpDelete(key)).
		Commit()
	if err != nil {
		return fmt.Errorf("discovery: delete service meta %s: %w", service, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("%w: service meta %s is not at revision %d", ErrConflict, service, prevRevision)
	}
	return nil
}
