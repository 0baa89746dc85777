package controller

import (
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestStoreUnavailable(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("store: txn: %w", status.Error(codes.Unavailable, "error reading from server: EOF")), true},
		{fmt.Errorf("store: txn: %w", status.Error(codes.InvalidArgument, "too many operations")), false},
		{errors.New("unavailable"), false},
	} {
		if got := storeUnavailable(c.err); got != c.want {
			t.Errorf("%v: %v, want %v", c.err, got, c.want)
		}
	}
}
