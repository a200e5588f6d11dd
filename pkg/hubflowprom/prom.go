// Package hubflowprom exports what a pkg/hubflow producer and consumer do as
// Prometheus metrics. It is a module of its own, so an application that
// does not use Prometheus does not pull it in:
//
//	obs, err := hubflowprom.New(prometheus.DefaultRegisterer)
//	p, err := hubflow.NewProducer(ctx, b, hubflow.WithObserver(obs))
//	c, err := hubflow.NewConsumer(ctx, b, hubflow.WithObserver(obs))
//
// One Observer serves any number of producers and consumers; series are
// labelled by stream (and durable) and semantic.
package hubflowprom

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hubflow/hubflow/pkg/hubflow"
)

// Observer is a hubflow.Observer that counts and times publishes and
// handled deliveries.
type Observer struct {
	publishes      *prometheus.CounterVec
	publishSeconds *prometheus.HistogramVec
	handled        *prometheus.CounterVec
	handleSeconds  *prometheus.HistogramVec
}

var _ hubflow.Observer = (*Observer)(nil)

// Publish outcomes (label "outcome").
const (
	OutcomeStored    = "stored"    // acknowledged by the stream
	OutcomeDuplicate = "duplicate" // acknowledged as an id the stream already held
	OutcomeSent      = "sent"      // AtMostOnce: written, nothing acknowledges it
	OutcomeFailed    = "failed"    // given up on: the error says whether it may be stored
)

// Handler results (label "result").
const (
	ResultOK     = "ok"
	ResultFailed = "failed" // redelivered (AtLeastOnce, ExactlyOnce) or dropped (AtMostOnce)
	ResultPoison = "poison" // terminated: set aside, to the dead-letter Topic if one is declared
)

// New registers the metrics with reg and returns the Observer.
func New(reg prometheus.Registerer) (*Observer, error) {
	o := &Observer{
		publishes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hubflow_client_publishes_total",
			Help: "Publish calls by stream, semantic and outcome (stored, duplicate, sent, failed); retries are not counted again.",
		}, []string{"stream", "semantic", "outcome"}),
		publishSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "hubflow_client_publish_seconds",
			Help:    "Time from a publish call to its outcome, retries included.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10), // 100µs .. 26s
		}, []string{"stream", "semantic"}),
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hubflow_client_handled_total",
			Help: "Deliveries handled by stream, durable, semantic and result (ok, failed, poison).",
		}, []string{"stream", "durable", "semantic", "result"}),
		handleSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "hubflow_client_handle_seconds",
			Help:    "Time the handler took per delivery.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}, []string{"stream", "durable", "semantic"}),
	}
	for _, c := range []prometheus.Collector{o.publishes, o.publishSeconds, o.handled, o.handleSeconds} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// Publishing implements hubflow.Observer.
func (o *Observer) Publishing(_ context.Context, info hubflow.PublishInfo, _ nats.Header) func(hubflow.Ack, error) {
	start := time.Now()
	return func(a hubflow.Ack, err error) {
		o.publishSeconds.WithLabelValues(info.Stream, info.Semantic).Observe(time.Since(start).Seconds())
		o.publishes.WithLabelValues(info.Stream, info.Semantic, PublishOutcome(info.Semantic, a, err)).Inc()
	}
}

// Handling implements hubflow.Observer.
func (o *Observer) Handling(ctx context.Context, info hubflow.HandleInfo, _ *hubflow.Delivery) (context.Context, func(error)) {
	start := time.Now()
	return ctx, func(err error) {
		o.handleSeconds.WithLabelValues(info.Stream, info.Durable, info.Semantic).Observe(time.Since(start).Seconds())
		o.handled.WithLabelValues(info.Stream, info.Durable, info.Semantic, HandleResult(err)).Inc()
	}
}

// PublishOutcome is the "outcome" label of a publish's result.
func PublishOutcome(semantic string, a hubflow.Ack, err error) string {
	switch {
	case err != nil:
		return OutcomeFailed
	case a.Duplicate:
		return OutcomeDuplicate
	case semantic == "AtMostOnce":
		return OutcomeSent
	default:
		return OutcomeStored
	}
}

// HandleResult is the "result" label of a handler's result.
func HandleResult(err error) string {
	switch {
	case err == nil:
		return ResultOK
	case errors.Is(err, hubflow.ErrPoison):
		return ResultPoison
	default:
		return ResultFailed
	}
}
