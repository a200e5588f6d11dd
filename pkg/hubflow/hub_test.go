package hubflow

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hubflow/hubflow/pkg/binding"
	"github.com/hubflow/hubflow/pkg/internal/natstest"
)

// hub is a single in-process JetStream server with an admin connection that
// plays the operator: it creates the streams and durables the client binds to.
type hub struct {
	srv *natstest.Server
	nc  *nats.Conn
	js  jetstream.JetStream
}

func startHub(t testing.TB) *hub {
	t.Helper()
	srv := natstest.Start(t, nil)
	nc, js := srv.Connect(t)
	return &hub{srv: srv, nc: nc, js: js}
}

func (h *hub) stream(t testing.TB, name string, sem string, subjects ...string) {
	t.Helper()
	cfg := jetstream.StreamConfig{Name: name, Subjects: subjects, Storage: jetstream.FileStorage, Discard: jetstream.DiscardNew}
	switch sem {
	case "AtMostOnce":
		cfg.Storage, cfg.Discard = jetstream.MemoryStorage, jetstream.DiscardOld
	case "ExactlyOnce":
		cfg.Duplicates = 2 * time.Minute
	}
	if _, err := h.js.CreateStream(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
}

func (h *hub) durable(t testing.TB, stream, name, sem string, ackWait time.Duration) {
	t.Helper()
	cfg := jetstream.ConsumerConfig{Durable: name, AckPolicy: jetstream.AckExplicitPolicy, AckWait: ackWait, MaxDeliver: -1}
	if sem == "AtMostOnce" {
		cfg.AckPolicy, cfg.AckWait = jetstream.AckNonePolicy, 0
	}
	if _, err := h.js.CreateConsumer(context.Background(), stream, cfg); err != nil {
		t.Fatal(err)
	}
}

func (h *hub) count(t testing.TB, stream string) uint64 {
	t.Helper()
	s, err := h.js.Stream(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	return s.CachedInfo().State.Msgs
}

func (h *hub) consumerInfo(t testing.TB, stream, durable string) *jetstream.ConsumerInfo {
	t.Helper()
	c, err := h.js.Consumer(context.Background(), stream, durable)
	if err != nil {
		t.Fatal(err)
	}
	return c.CachedInfo()
}

// producerBinding is what the operator writes for a Producer of sem.
func producerBinding(url, stream, sem string, subjects ...string) binding.Binding {
	b := binding.Binding{Role: binding.RoleProducer, URL: url, Stream: stream, Subjects: subjects, Semantic: sem}
	if sem != "AtMostOnce" {
		b.WaitForAck, b.AckTimeout, b.Retries, b.RetryWait = true, time.Second, 10, 100*time.Millisecond
	}
	if sem == "ExactlyOnce" {
		b.MessageID, b.DuplicateWindow = true, 2*time.Minute
	}
	return b
}

// consumerBinding is what the operator writes for a Consumer of sem.
func consumerBinding(url, stream, durable, sem string, ackWait time.Duration) binding.Binding {
	b := binding.Binding{Role: binding.RoleConsumer, URL: url, Stream: stream, Durable: durable, Semantic: sem, Ack: binding.AckNone}
	switch sem {
	case "AtLeastOnce":
		b.Ack = binding.AckExplicit
	case "ExactlyOnce":
		b.Ack, b.IdempotencyKey = binding.AckDoubleAck, true
	}
	if sem != "AtMostOnce" {
		b.AckWait, b.RedeliveryDelays = ackWait, []time.Duration{100 * time.Millisecond}
	}
	return b
}

func quiet() Option { return WithLogger(slog.New(slog.DiscardHandler)) }

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond; the deadline only bounds a failing test.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	if !eventually(cond) {
		t.Fatalf("timed out waiting for %s", what)
	}
}

// eventually polls cond for up to 30s, for goroutines that cannot fail a test.
func eventually(cond func() bool) bool {
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}
