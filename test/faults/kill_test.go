package faults

import (
	"context"
	"sync/atomic"

	"github.com/hubflow/hubflow/pkg/hubflow"
)

// killingDedup is the consumer's dedup record with a kill switch: once armed
// with a key, recording that key closes the consumer's connection right
// after the record is written, so the acknowledgement that follows is lost
// as in a crash between handling and ack.
type killingDedup struct {
	hubflow.Dedup
	kill  func()
	armed atomic.Pointer[string]
}

func (d *killingDedup) Record(ctx context.Context, key string) error {
	err := d.Dedup.Record(ctx, key)
	if k := d.armed.Load(); k != nil && *k == key && d.armed.CompareAndSwap(k, nil) {
		d.kill()
	}
	return err
}
