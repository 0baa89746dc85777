package controller

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/store"
)

// A disk low on space, said as such: work that would write to this
// server's disk is refused up front while it is under pressure (see
// internal/diskguard), and a write the store refused for want of space
// names the disk, instead of failing somewhere inside as an internal
// error.

// refuseUnderPressure is the error of work refused while this server's
// data disk is under pressure, nil when it is not.
func (c *Controller) refuseUnderPressure(what string) error {
	if c.Disk == nil {
		return nil
	}
	if st := c.Disk.Status(); st.Pressure {
		return api.Errorf(api.ErrCodeInsufficientStorage, "%s refused: %s; pier resumes by itself once space is freed", what, st.Reason())
	}
	return nil
}

// writeError answers with err, explaining the store's refusals first.
// A refusal for want of space carries the request id, for the server's
// log line and for whoever gets the report.
func (c *Controller) writeError(w http.ResponseWriter, r *http.Request, err error) {
	id := w.Header().Get(RequestIDHeader)
	err = c.explainStoreError(r.Context(), id, err)
	var ae *api.Error
	if errors.As(err, &ae) && ae.Code == api.ErrCodeInsufficientStorage && id != "" && !strings.Contains(ae.Message, id) {
		e := *ae
		e.Message += " (request " + id + ")"
		err = &e
	}
	writeError(w, r, c.Log, err)
}

// explainStoreError turns the store's refusals into API errors that say
// what to do.
func (c *Controller) explainStoreError(ctx context.Context, requestID string, err error) error {
	switch {
	case store.IsNoSpace(err):
		return api.Errorf(api.ErrCodeInsufficientStorage, "the cluster's store takes no writes: %s; free space there and pier resumes by itself (request %s)",
			c.whoIsOutOfSpace(ctx), requestID)
	case errors.Is(err, rpctypes.ErrRequestTooLarge) || errors.Is(err, rpctypes.ErrGRPCRequestTooLarge) || tooLargeToSend(err):
		return invalid("the change is too large for the cluster's store (at most %d KiB per write): keep large data in files or a database, not in config vars", maxStoreWrite>>10)
	}
	return err
}

// maxStoreWrite is etcd's default request size limit.
const maxStoreWrite = 1536 << 10

// tooLargeToSend reports the etcd client's own refusal of a request over
// its send limit (2 MiB by default), which never reaches the server.
func tooLargeToSend(err error) bool {
	st, ok := status.FromError(err)
	return ok && st.Code() == codes.ResourceExhausted && strings.Contains(st.Message(), "larger than max")
}

// whoIsOutOfSpace names the disk, or the store members, short of space.
func (c *Controller) whoIsOutOfSpace(ctx context.Context) string {
	if c.Disk != nil {
		if st := c.Disk.Status(); st.Pressure {
			return st.Reason()
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	alarms, err := c.Client.AlarmList(ctx)
	if err != nil || len(alarms.Alarms) == 0 {
		return "a server's disk or database is out of space"
	}
	names := map[uint64]string{}
	if members, err := c.Client.MemberList(ctx); err == nil {
		for _, m := range members.Members {
			names[m.ID] = m.Name
		}
	}
	var who []string
	for _, a := range alarms.Alarms {
		name := names[a.MemberID]
		if name == "" {
			name = fmt.Sprintf("%x", a.MemberID)
		}
		who = append(who, "server "+name)
	}
	return strings.Join(who, ", ") + " is out of space (its data disk, or its database's quota)"
}
