package main

import (
	"context"
	"testing"
	"time"
)

// The demo's whole flow, shortened: control plane, three-node hub, manager,
// the samples, and 200 messages per flow through the operator's bindings.
// It fails if any consumer does not get what its semantic promises.
func TestDemoKeepsEveryPromise(t *testing.T) {
	kept, err := run(context.Background(), options{messages: 200, timeout: 3 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if !kept {
		t.Fatal("a flow broke its promise (see the table above)")
	}
}
