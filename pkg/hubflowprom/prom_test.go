package hubflowprom

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/hubflow/hubflow/pkg/binding"
	"github.com/hubflow/hubflow/pkg/hubflow"
	"github.com/hubflow/hubflow/pkg/internal/natstest"
)

// An ExactlyOnce flow on a real nats-server, observed: the counters say
// what the producer and the consumer did, the histograms got one sample per
// call.
func TestMetricsCountWhatTheFlowDid(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv := natstest.Start(t, nil)
	_, js := srv.Connect(t)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders"}, Duplicates: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateConsumer(ctx, "ORDERS", jetstream.ConsumerConfig{Durable: "billing", AckPolicy: jetstream.AckExplicitPolicy, AckWait: 5 * time.Second}); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	obs, err := New(reg)
	if err != nil {
		t.Fatal(err)
	}
	quiet := hubflow.WithLogger(slog.New(slog.DiscardHandler))

	p, err := hubflow.NewProducer(ctx, binding.Binding{Role: binding.RoleProducer, URL: srv.URL(), Stream: "ORDERS", Subjects: []string{"orders"},
		Semantic: "ExactlyOnce", WaitForAck: true, MessageID: true, AckTimeout: time.Second, Retries: 3, RetryWait: 100 * time.Millisecond,
		DuplicateWindow: time.Minute}, quiet, hubflow.WithObserver(obs))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	for _, id := range []string{"o-1", "o-2", "o-poison", "o-1"} {
		if _, err := p.Publish(ctx, hubflow.Msg{Data: []byte(id), ID: id}); err != nil {
			t.Fatal(err)
		}
	}

	c, err := hubflow.NewConsumer(ctx, binding.Binding{Role: binding.RoleConsumer, URL: srv.URL(), Stream: "ORDERS", Durable: "billing",
		Semantic: "ExactlyOnce", Ack: binding.AckDoubleAck, IdempotencyKey: true, AckWait: 5 * time.Second,
		RedeliveryDelays: []time.Duration{100 * time.Millisecond}}, quiet, hubflow.WithObserver(obs))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	runCtx, stop := context.WithCancel(ctx)
	var calls atomic.Int32
	done := make(chan error, 1)
	go func() {
		done <- c.Run(runCtx, func(_ context.Context, d *hubflow.Delivery) error {
			n := calls.Add(1)
			switch {
			case string(d.Data) == "o-poison":
				return hubflow.Poison(fmt.Errorf("order %s is malformed", d.Data))
			case string(d.Data) == "o-2" && d.NumDelivered == 1:
				return fmt.Errorf("the ledger is busy")
			}
			if n >= 4 {
				stop()
			}
			return nil
		})
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatalf("the consumer handled %d deliveries of 4 in time", calls.Load())
	}

	for outcome, want := range map[string]float64{OutcomeStored: 3, OutcomeDuplicate: 1, OutcomeFailed: 0} {
		if got := testutil.ToFloat64(obs.publishes.WithLabelValues("ORDERS", "ExactlyOnce", outcome)); got != want {
			t.Errorf("publishes %s = %v, want %v", outcome, got, want)
		}
	}
	for result, want := range map[string]float64{ResultOK: 2, ResultFailed: 1, ResultPoison: 1} {
		if got := testutil.ToFloat64(obs.handled.WithLabelValues("ORDERS", "billing", "ExactlyOnce", result)); got != want {
			t.Errorf("handled %s = %v, want %v", result, got, want)
		}
	}
	if n := testutil.CollectAndCount(reg, "hubflow_client_publish_seconds", "hubflow_client_handle_seconds"); n != 2 {
		t.Errorf("%d histogram series, want one each", n)
	}
}
