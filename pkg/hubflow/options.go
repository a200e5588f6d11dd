package hubflow

import (
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
)

// ProducerOption tunes a Producer: an Option (for both sides) or one of the
// producer's own (WithMaxPending).
type ProducerOption interface{ applyProducer(*options) }

// ConsumerOption tunes a Consumer: an Option (for both sides) or one of the
// consumer's own (WithConcurrency, WithBatch, WithPullExpiry, WithDedup).
//
// The two types are distinct so that an option for the wrong side is a
// compile error rather than silently ignored.
type ConsumerOption interface{ applyConsumer(*options) }

// Option tunes a Producer or a Consumer alike: it is both a ProducerOption
// and a ConsumerOption.
type Option func(*options)

func (f Option) applyProducer(o *options) { f(o) }
func (f Option) applyConsumer(o *options) { f(o) }

type producerOnly func(*options)

func (f producerOnly) applyProducer(o *options) { f(o) }

type consumerOnly func(*options)

func (f consumerOnly) applyConsumer(o *options) { f(o) }

type options struct {
	logger       *slog.Logger
	name         string
	credsFile    string
	natsOptions  []nats.Option
	drainTimeout time.Duration
	observers    []Observer

	// Producer.
	maxPending int

	// Consumer.
	concurrency int
	batch       int
	pullExpiry  time.Duration
	dedup       Dedup
}

// Defaults of the options.
const (
	DefaultMaxPending   = 4096
	DefaultConcurrency  = 1
	DefaultBatch        = 128
	DefaultPullExpiry   = 5 * time.Second
	DefaultDrainTimeout = 30 * time.Second
)

func defaultOptions() *options {
	return &options{
		logger:       slog.Default(),
		drainTimeout: DefaultDrainTimeout,
		maxPending:   DefaultMaxPending,
		concurrency:  DefaultConcurrency,
		batch:        DefaultBatch,
		pullExpiry:   DefaultPullExpiry,
	}
}

func newProducerOptions(opts []ProducerOption) *options {
	o := defaultOptions()
	for _, opt := range opts {
		opt.applyProducer(o)
	}
	return o
}

func newConsumerOptions(opts []ConsumerOption) *options {
	o := defaultOptions()
	for _, opt := range opts {
		opt.applyConsumer(o)
	}
	return o
}

// WithLogger sets where connection events and errors that no call returns
// (a failed acknowledgement of a consumed message, a server's asynchronous
// error) are logged. Default slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.logger = l
		}
	}
}

// WithName sets the connection name the server shows in its monitoring
// endpoints. Default "hubflow-producer <stream>" or "hubflow-consumer
// <stream>/<durable>".
func WithName(name string) Option { return func(o *options) { o.name = name } }

// WithCredsFile reads the credentials from path at every (re)connect instead
// of using the binding's, so credentials the operator renews in the mounted
// Secret are picked up without a restart. ProducerFromEnv and
// ConsumerFromEnv set it to the binding's creds file when there is one.
func WithCredsFile(path string) Option { return func(o *options) { o.credsFile = path } }

// WithNATSOptions adds nats.go connection options, for what a binding does
// not carry (TLS, for example). They are applied after hubflow's own.
func WithNATSOptions(opts ...nats.Option) Option {
	return func(o *options) { o.natsOptions = append(o.natsOptions, opts...) }
}

// WithDrainTimeout bounds a graceful shutdown: Producer.Close waiting for
// outstanding acknowledgements, Consumer.Run finishing the messages it holds
// after its context ends. Default 30s.
func WithDrainTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.drainTimeout = d
		}
	}
}

// WithMaxPending (Producer) bounds how many acknowledged publishes may be in
// flight at once; PublishAsync blocks for a free slot beyond it. Default
// 4096.
func WithMaxPending(n int) ProducerOption {
	return producerOnly(func(o *options) {
		if n > 0 {
			o.maxPending = n
		}
	})
}

// WithConcurrency (Consumer) runs the handler on n goroutines. Default 1,
// which keeps the stream's order. The durable's MaxAckPending bounds how
// many messages are out at once anyway.
func WithConcurrency(n int) ConsumerOption {
	return consumerOnly(func(o *options) {
		if n > 0 {
			o.concurrency = n
		}
	})
}

// WithBatch (Consumer) sets how many messages the client asks the server
// for ahead of the handler. Keep batch × handler time well under the
// binding's ack wait, or prefetched messages are redelivered while they
// wait. Default 128.
func WithBatch(n int) ConsumerOption {
	return consumerOnly(func(o *options) {
		if n > 0 {
			o.batch = n
		}
	})
}

// WithPullExpiry (Consumer) sets how long one pull request stays open at
// the server. The server sends idle heartbeats at a fifth of it; two missed
// heartbeats (a consumer leader that moved, a silent connection) make the
// client pull again. Default 5s.
func WithPullExpiry(d time.Duration) ConsumerOption {
	return consumerOnly(func(o *options) {
		if d >= time.Second {
			o.pullExpiry = d
		}
	})
}

// WithDedup (Consumer) records the idempotency key of every message the
// handler processed, and skips (acknowledges without calling the handler) a
// redelivery of a recorded key. See Dedup for what it does and does not
// cover.
func WithDedup(d Dedup) ConsumerOption { return consumerOnly(func(o *options) { o.dedup = d }) }
