package hubflow

import (
	"context"

	"github.com/nats-io/nats.go"
)

// Observer sees every publish and every handled delivery: the hook that
// metrics and tracing plug into. The client depends on NATS alone; the
// adapters are modules of their own (pkg/hubflowprom for Prometheus,
// pkg/hubflowotel for OpenTelemetry), so an application pulls in only what
// it uses. Methods are called on the publishing goroutine and on the
// consumer's workers: they must be safe for concurrent use and quick.
type Observer interface {
	// Publishing is called once per Publish or PublishAsync call (not per
	// retry), before the message is first sent. header is the message's
	// own copy, written to the wire: a tracer injects its context there
	// (W3C traceparent). The returned func, if not nil, is called once with
	// the outcome; for AtMostOnce that is when the message was written.
	Publishing(ctx context.Context, info PublishInfo, header nats.Header) func(Ack, error)
	// Handling is called before the handler runs on d; a tracer extracts
	// the producer's context from d.Header. The handler gets the returned
	// context, and the returned func, if not nil, is called with the
	// handler's result. A redelivery the dedup record skips is not handled.
	Handling(ctx context.Context, info HandleInfo, d *Delivery) (context.Context, func(error))
}

// PublishInfo describes a publish to an Observer.
type PublishInfo struct {
	Stream, Subject string
	Semantic        string // the binding's: AtMostOnce, AtLeastOnce or ExactlyOnce
	ID              string // the Nats-Msg-Id sent, if any
}

// HandleInfo describes a handled delivery to an Observer.
type HandleInfo struct {
	Stream, Durable string
	Semantic        string
}

// WithObserver adds o to the observers of a producer or a consumer; given
// more than once, each sees every event, in the order given.
func WithObserver(o Observer) Option {
	return func(opts *options) {
		if o != nil {
			opts.observers = append(opts.observers, o)
		}
	}
}

// publishing tells the observers about a publish and returns the func to
// call with its outcome (never nil).
func publishing(observers []Observer, ctx context.Context, info PublishInfo, header nats.Header) func(Ack, error) {
	var ends []func(Ack, error)
	for _, o := range observers {
		if end := o.Publishing(ctx, info, header); end != nil {
			ends = append(ends, end)
		}
	}
	return func(a Ack, err error) {
		for _, end := range ends {
			end(a, err)
		}
	}
}

// handling tells the observers about a delivery about to be handled and
// returns the handler's context and the func to call with its result.
func handling(observers []Observer, ctx context.Context, info HandleInfo, d *Delivery) (context.Context, func(error)) {
	var ends []func(error)
	for _, o := range observers {
		var end func(error)
		if ctx, end = o.Handling(ctx, info, d); end != nil {
			ends = append(ends, end)
		}
	}
	return ctx, func(err error) {
		// The innermost first, as deferred calls unwind.
		for i := len(ends) - 1; i >= 0; i-- {
			ends[i](err)
		}
	}
}
