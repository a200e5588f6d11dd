package hubflow

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A stream deleted and created again restarts its sequences at 1. Messages
// of the new stream must not look like the old stream's to a persistent
// dedup record (issue 9, item 1): the handler runs for each of them.
func TestIdempotencyKeysSurviveAStreamRecreation(t *testing.T) {
	h := startHub(t)
	record, err := OpenFileDedup(t.TempDir()+"/processed", true)
	if err != nil {
		t.Fatal(err)
	}
	defer record.Close()
	b := consumerBinding(h.srv.URL(), "INCARN", "ledger", "AtLeastOnce", time.Second)

	var keys [2][]string
	for incarnation := range 2 {
		if incarnation == 1 {
			if err := h.js.DeleteStream(ctxT(t), "INCARN"); err != nil {
				t.Fatal(err)
			}
		}
		h.stream(t, "INCARN", "AtLeastOnce", "incarn")
		h.durable(t, "INCARN", "ledger", "AtLeastOnce", time.Second)
		publishN(t, h, "INCARN", "AtLeastOnce", "incarn", 3) // no Nats-Msg-Id
		c, err := NewConsumer(ctxT(t), b, quiet(), WithDedup(record))
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		err = runConsumer(t, c, func(_ context.Context, d *Delivery) error {
			mu.Lock()
			keys[incarnation] = append(keys[incarnation], d.IdempotencyKey)
			mu.Unlock()
			return nil
		}, func() bool { st := c.Stats(); return st.Processed+st.Skipped >= 3 })
		if err != nil {
			t.Fatal(err)
		}
		if st := c.Stats(); st.Processed != 3 || st.Skipped != 0 {
			t.Errorf("stream incarnation %d: handler ran %d times, %d messages skipped as already processed; want 3 and 0 (keys of the first incarnation %v)",
				incarnation, st.Processed, st.Skipped, keys[0])
		}
		c.Close(context.Background())
	}
	for _, k := range keys[1] {
		if !strings.HasPrefix(k, "INCARN:") {
			t.Errorf("key %q does not start with the stream name", k)
		}
	}
}

// "Never two deliveries of the same key at once" holds without a dedup
// record too (issue 9, item 8): a redelivery that arrives while the first
// delivery is still in the handler waits for it.
func TestNoConcurrentDeliveriesOfOneKeyWithoutDedup(t *testing.T) {
	noConcurrentDeliveriesOfOneKey(t, "AtLeastOnce", nil)
}

// The same with a dedup record, on an ExactlyOnce consumer.
func TestNoConcurrentDeliveriesOfOneKeyWithDedup(t *testing.T) {
	noConcurrentDeliveriesOfOneKey(t, "ExactlyOnce", NewMemoryDedup(16))
}

func noConcurrentDeliveriesOfOneKey(t *testing.T, sem string, dedup Dedup) {
	h := startHub(t)
	h.stream(t, "OVERLAP", sem, "overlap")
	h.durable(t, "OVERLAP", "slow", sem, time.Second)
	publishN(t, h, "OVERLAP", sem, "overlap", 1)
	opts := []ConsumerOption{quiet(), WithConcurrency(4)}
	if dedup != nil {
		opts = append(opts, WithDedup(dedup))
	}
	c, err := NewConsumer(ctxT(t), consumerBinding(h.srv.URL(), "OVERLAP", "slow", sem, time.Second), opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var inHandler, overlaps, runs atomic.Int32
	err = runConsumer(t, c, func(_ context.Context, d *Delivery) error {
		if inHandler.Add(1) > 1 {
			overlaps.Add(1)
		}
		defer inHandler.Add(-1)
		if runs.Add(1) == 1 {
			time.Sleep(2500 * time.Millisecond) // past the 1s ack wait: the server redelivers meanwhile
		}
		return nil
	}, func() bool {
		return c.Stats().Acked >= 1 && runs.Load() >= 1 && inHandler.Load() == 0 && c.Stats().Delivered >= 2
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.Stats().Delivered < 2 {
		t.Fatalf("the server delivered the message %d times; the test needs a redelivery during the slow handler", c.Stats().Delivered)
	}
	if overlaps.Load() > 0 {
		t.Errorf("the handler ran %d times concurrently for one key", overlaps.Load()+1)
	}
}
