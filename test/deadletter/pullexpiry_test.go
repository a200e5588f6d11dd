package deadletter

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hubflow/hubflow/internal/testnats"
	"github.com/hubflow/hubflow/pkg/binding"
	"github.com/hubflow/hubflow/pkg/hubflow"
)

// hubflow.WithPullExpiry accepts any expiry of at least a second, but Run
// asks the server for idle heartbeats at a fifth of it, and nats.go refuses
// a heartbeat outside 500ms-30s: an expiry under 2.5s or over 150s makes
// Run fail at once ("idle_heartbeat value must be within 500ms-30s range")
// instead of consuming. Found while writing the conformance test (it used 2s).
func TestPullExpiryTheOptionAccepts(t *testing.T) {
	srv, err := testnats.Start(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	js := testnats.Connect(t, srv.URL())
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "orders", Subjects: []string{"orders.>"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateConsumer(ctx, "orders", jetstream.ConsumerConfig{Durable: "billing", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	b := binding.Binding{Role: binding.RoleConsumer, URL: srv.URL(), Stream: "orders", Durable: "billing",
		Semantic: "AtLeastOnce", Ack: binding.AckExplicit, AckWait: time.Second}
	for _, expiry := range []time.Duration{time.Second, 2 * time.Second, 2500 * time.Millisecond, 3 * time.Minute} {
		c, err := hubflow.NewConsumer(ctx, b, hubflow.WithPullExpiry(expiry), hubflow.WithLogger(slog.New(slog.DiscardHandler)))
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		err = c.Run(rctx, func(context.Context, *hubflow.Delivery) error { return nil })
		cancel()
		c.Close(context.Background())
		if err != nil || !errors.Is(rctx.Err(), context.DeadlineExceeded) {
			t.Errorf("WithPullExpiry(%s): Run returned %v before its context ended; want it to consume until then", expiry, err)
		}
	}
}
