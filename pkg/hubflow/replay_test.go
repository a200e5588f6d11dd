package hubflow

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hubflow/hubflow/pkg/binding"
)

// A dead letter the operator replays into its Topic is a new message to the
// stream (its own Nats-Msg-Id) and the original to consumers: the
// Hubflow-Idempotency-Key header wins over the message id, so a consumer
// that processed the original skips the replay with its dedup record, and a
// message with only the header is keyed by it.
func TestReplayedMessageKeepsTheOriginalKey(t *testing.T) {
	h := startHub(t)
	h.stream(t, "REPLAY", "ExactlyOnce", "replay")
	h.durable(t, "REPLAY", "ledger", "ExactlyOnce", 5*time.Second)
	publish := func(header nats.Header) {
		t.Helper()
		if _, err := h.js.PublishMsg(ctxT(t), &nats.Msg{Subject: "replay", Header: header}); err != nil {
			t.Fatal(err)
		}
	}
	publish(nats.Header{jetstream.MsgIDHeader: {"a"}})
	publish(nats.Header{jetstream.MsgIDHeader: {"replay-1"}, binding.IdempotencyKeyHeader: {"a"}})
	publish(nats.Header{binding.IdempotencyKeyHeader: {"c"}})
	if n := h.count(t, "REPLAY"); n != 3 {
		t.Fatalf("stream holds %d messages, want 3: the replay's own id must keep it from the duplicate window", n)
	}

	c, err := NewConsumer(ctxT(t), consumerBinding(h.srv.URL(), "REPLAY", "ledger", "ExactlyOnce", 5*time.Second),
		quiet(), WithDedup(NewMemoryDedup(16)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var mu sync.Mutex
	var handled []string
	err = runConsumer(t, c, func(_ context.Context, d *Delivery) error {
		mu.Lock()
		handled = append(handled, d.IdempotencyKey)
		mu.Unlock()
		return nil
	}, func() bool { st := c.Stats(); return st.Acked == 3 })
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a", "c"}; !slices.Equal(handled, want) {
		t.Errorf("handler got keys %q, want %q: the replay of \"a\" must be skipped", handled, want)
	}
	if st := c.Stats(); st.Processed != 2 || st.Skipped != 1 {
		t.Errorf("stats %+v: want 2 processed, 1 skipped", st)
	}
}
