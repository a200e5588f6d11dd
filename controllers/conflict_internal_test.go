package controllers

import (
	"errors"
	"fmt"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// A finalizer write that met a newer version is retried quietly, wrapped or
// not; anything else is still an error.
func TestRetryConflict(t *testing.T) {
	conflict := apierrors.NewConflict(schema.GroupResource{Group: "hubflow.io", Resource: "consumers"}, "worker", errors.New("the object has been modified"))
	for _, err := range []error{conflict, fmt.Errorf("adding finalizer: %w", conflict), errors.Join(conflict, conflict)} {
		if res, got := retryConflict(err); got != nil || res.RequeueAfter <= 0 {
			t.Errorf("retryConflict(%v) = %+v, %v; want a quiet retry", err, res, got)
		}
	}
	boom := errors.New("boom")
	for _, err := range []error{boom, errors.Join(boom, conflict)} {
		if _, got := retryConflict(err); !errors.Is(got, boom) {
			t.Errorf("retryConflict(%v) = %v, want boom kept", err, got)
		}
	}
	if res, got := retryConflict(nil); got != nil || res.RequeueAfter != 0 {
		t.Errorf("retryConflict(nil) = %+v, %v", res, got)
	}
}
