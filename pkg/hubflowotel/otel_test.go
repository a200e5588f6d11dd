package hubflowotel_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/hubflow/hubflow/pkg/binding"
	"github.com/hubflow/hubflow/pkg/hubflow"
	"github.com/hubflow/hubflow/pkg/hubflowotel"
	"github.com/hubflow/hubflow/pkg/internal/natstest"
)

// A trace goes from the code that publishes, through the message's header,
// to the handler: on a real nats-server, the consumer's span continues the
// producer's trace and the handler's context carries it. A message
// published by anything else with a W3C "Traceparent" header (as the HTTP
// gateway stores one) continues that trace too; a failing handler marks
// its span.
func TestTraceContextTravelsInTheMessage(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv := natstest.Start(t, nil)
	_, js := srv.Connect(t)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateConsumer(ctx, "ORDERS", jetstream.ConsumerConfig{Durable: "billing", AckPolicy: jetstream.AckExplicitPolicy, AckWait: 5 * time.Second}); err != nil {
		t.Fatal(err)
	}
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	obs := hubflowotel.New(hubflowotel.WithTracerProvider(tp))
	quiet := hubflow.WithLogger(slog.New(slog.DiscardHandler))

	p, err := hubflow.NewProducer(ctx, binding.Binding{Role: binding.RoleProducer, URL: srv.URL(), Stream: "ORDERS", Subjects: []string{"orders"},
		Semantic: "AtLeastOnce", WaitForAck: true, AckTimeout: time.Second, Retries: 3, RetryWait: 100 * time.Millisecond}, quiet, hubflow.WithObserver(obs))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	rootCtx, root := tp.Tracer("test").Start(ctx, "checkout")
	if _, err := p.Publish(rootCtx, hubflow.Msg{Data: []byte("from-go")}); err != nil {
		t.Fatal(err)
	}
	root.End()
	// As the gateway stores an HTTP caller's header: the name as HTTP spells it.
	const foreignTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	m := nats.NewMsg("orders")
	m.Data = []byte("from-http")
	m.Header.Set("Traceparent", "00-"+foreignTrace+"-00f067aa0ba902b7-01")
	if _, err := js.PublishMsg(ctx, m); err != nil {
		t.Fatal(err)
	}

	c, err := hubflow.NewConsumer(ctx, binding.Binding{Role: binding.RoleConsumer, URL: srv.URL(), Stream: "ORDERS", Durable: "billing",
		Semantic: "AtLeastOnce", Ack: binding.AckExplicit, AckWait: 5 * time.Second, RedeliveryDelays: []time.Duration{50 * time.Millisecond}},
		quiet, hubflow.WithObserver(obs))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var mu sync.Mutex
	inHandler := map[string][]trace.SpanContext{}
	runCtx, stop := context.WithCancel(ctx)
	err = c.Run(runCtx, func(ctx context.Context, d *hubflow.Delivery) error {
		mu.Lock()
		defer mu.Unlock()
		inHandler[string(d.Data)] = append(inHandler[string(d.Data)], trace.SpanContextFromContext(ctx))
		if string(d.Data) == "from-http" && d.NumDelivered == 1 {
			return errors.New("the ledger is busy")
		}
		if len(inHandler["from-go"]) > 0 && len(inHandler["from-http"]) > 1 {
			stop()
		}
		return nil
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	if ctx.Err() != nil {
		t.Fatalf("the consumer did not handle both messages in time: %v", inHandler)
	}

	var send sdktrace.ReadOnlySpan
	var process []sdktrace.ReadOnlySpan
	for _, s := range spans.Ended() {
		switch s.SpanKind() {
		case trace.SpanKindProducer:
			send = s
		case trace.SpanKindConsumer:
			process = append(process, s)
		}
	}
	if send == nil || send.Name() != "send orders" || send.Parent().SpanID() != root.SpanContext().SpanID() {
		t.Fatalf("producer span %v: want \"send orders\", a child of the caller's span", send)
	}
	if len(process) != 3 {
		t.Fatalf("%d consumer spans, want 3 (one per handled delivery)", len(process))
	}
	var goSpans, httpSpans, failed int
	for _, s := range process {
		switch s.SpanContext().TraceID() {
		case root.SpanContext().TraceID():
			goSpans++
			if s.Parent().SpanID() != send.SpanContext().SpanID() {
				t.Errorf("consumer span's parent %s, want the producer's span %s", s.Parent().SpanID(), send.SpanContext().SpanID())
			}
		default:
			if s.SpanContext().TraceID().String() == foreignTrace {
				httpSpans++
			}
		}
		if s.Status().Code == codes.Error {
			failed++
		}
	}
	if goSpans != 1 || httpSpans != 2 || failed != 1 {
		t.Errorf("consumer spans: %d in the Go producer's trace, %d in the foreign one, %d failed; want 1, 2, 1", goSpans, httpSpans, failed)
	}
	mu.Lock()
	defer mu.Unlock()
	if got := inHandler["from-go"][0].TraceID(); got != root.SpanContext().TraceID() {
		t.Errorf("the handler's context is in trace %s, want the producer's %s", got, root.SpanContext().TraceID())
	}
}
