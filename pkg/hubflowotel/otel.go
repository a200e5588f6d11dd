// Package hubflowotel traces what a pkg/hubflow producer and consumer do
// with OpenTelemetry, and carries the trace context in the messages'
// headers (W3C traceparent and tracestate), so that a consumer's span
// continues the producer's trace, across the HTTP gateway too, which copies
// those headers between HTTP and NATS. It is a module of its own, so an
// application that does not use OpenTelemetry does not pull it in:
//
//	obs := hubflowotel.New()  // the global TracerProvider, W3C trace context
//	p, err := hubflow.NewProducer(ctx, b, hubflow.WithObserver(obs))
//	c, err := hubflow.NewConsumer(ctx, b, hubflow.WithObserver(obs))
package hubflowotel

import (
	"context"
	"errors"
	"strings"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/hubflow/hubflow/pkg/hubflow"
)

// ScopeName is the instrumentation scope of the spans.
const ScopeName = "github.com/hubflow/hubflow/pkg/hubflowotel"

// Observer is a hubflow.Observer that starts a producer span per publish
// and a consumer span per handled delivery.
type Observer struct {
	tracer     trace.Tracer
	propagator propagation.TextMapPropagator
}

var _ hubflow.Observer = (*Observer)(nil)

// Option configures New.
type Option func(*Observer)

// WithTracerProvider sets where spans go; the global one by default.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(o *Observer) { o.tracer = tp.Tracer(ScopeName) }
}

// WithPropagator sets how the context is written to and read from message
// headers; W3C trace context by default, whatever the global propagator.
func WithPropagator(p propagation.TextMapPropagator) Option {
	return func(o *Observer) { o.propagator = p }
}

// New returns an Observer.
func New(opts ...Option) *Observer {
	o := &Observer{tracer: otel.GetTracerProvider().Tracer(ScopeName), propagator: propagation.TraceContext{}}
	for _, opt := range opts {
		opt(o)
	}
	return o
}

// Publishing starts a producer span, a child of ctx's span, and writes its
// context into the message's header.
func (o *Observer) Publishing(ctx context.Context, info hubflow.PublishInfo, header nats.Header) func(hubflow.Ack, error) {
	attrs := []attribute.KeyValue{
		attribute.String("messaging.system", "nats"),
		attribute.String("messaging.operation.type", "send"),
		attribute.String("messaging.destination.name", info.Subject),
		attribute.String("hubflow.stream", info.Stream),
		attribute.String("hubflow.semantic", info.Semantic),
	}
	if info.ID != "" {
		attrs = append(attrs, attribute.String("messaging.message.id", info.ID))
	}
	ctx, span := o.tracer.Start(ctx, "send "+info.Subject, trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(attrs...))
	o.propagator.Inject(ctx, headerCarrier(header))
	return func(a hubflow.Ack, err error) {
		if a.Sequence > 0 {
			span.SetAttributes(attribute.Int64("hubflow.stream.sequence", int64(a.Sequence)), attribute.Bool("hubflow.duplicate", a.Duplicate))
		}
		end(span, err)
	}
}

// Handling reads the producer's context from the delivery's header and
// starts a consumer span in that trace; the handler gets its context.
func (o *Observer) Handling(ctx context.Context, info hubflow.HandleInfo, d *hubflow.Delivery) (context.Context, func(error)) {
	ctx = o.propagator.Extract(ctx, headerCarrier(d.Header))
	ctx, span := o.tracer.Start(ctx, "process "+d.Subject, trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(
		attribute.String("messaging.system", "nats"),
		attribute.String("messaging.operation.type", "process"),
		attribute.String("messaging.destination.name", d.Subject),
		attribute.String("messaging.consumer.group.name", info.Durable),
		attribute.String("hubflow.stream", info.Stream),
		attribute.String("hubflow.semantic", info.Semantic),
		attribute.String("hubflow.idempotency_key", d.IdempotencyKey),
		attribute.Int64("hubflow.stream.sequence", int64(d.Sequence)),
		attribute.Int64("hubflow.delivery_count", int64(d.NumDelivered)),
	))
	return ctx, func(err error) { end(span, err) }
}

func end(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		if errors.Is(err, hubflow.ErrPoison) {
			span.SetAttributes(attribute.Bool("hubflow.poison", true))
		}
	}
	span.End()
}

// headerCarrier lets a propagator read and write NATS headers. NATS keeps a
// header name's case, and an HTTP client's "Traceparent" may arrive through
// the gateway as written: reads ignore case, writes use the propagator's.
type headerCarrier nats.Header

func (h headerCarrier) Get(key string) string {
	if v, ok := h[key]; ok && len(v) > 0 {
		return v[0]
	}
	for k, v := range h {
		if strings.EqualFold(k, key) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

func (h headerCarrier) Set(key, value string) {
	for k := range h {
		if strings.EqualFold(k, key) {
			delete(h, k)
		}
	}
	h[key] = []string{value}
}

func (h headerCarrier) Keys() []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	return keys
}
