package controllers

import (
	"context"
	"math"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/internal/semantic"
)

var (
	lagLabels        = []string{"namespace", "consumer", "stream"}
	pendingGauge     = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "hubflow_consumer_pending_messages", Help: "Messages in the stream not yet delivered to the consumer."}, lagLabels)
	ackPendingGauge  = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "hubflow_consumer_ack_pending_messages", Help: "Messages delivered to the consumer and not yet acknowledged."}, lagLabels)
	redeliveredGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "hubflow_consumer_redelivered_messages", Help: "Unacknowledged messages delivered more than once."}, lagLabels)
)

func init() {
	metrics.Registry.MustRegister(pendingGauge, ackPendingGauge, redeliveredGauge)
}

// lagCollector reads every consumer's backlog with one listing request per
// stream per interval, exports it as metrics, writes a coarse snapshot to
// the Consumer's status when it changed, and, since the listing carries each
// consumer's config, wakes the reconciler of any consumer that was edited
// or deleted behind hubflow's back (the server sends no advisory for edits).
type lagCollector struct {
	client client.Client
	hub    interface {
		ListConsumers(ctx context.Context, stream string) ([]*jetstream.ConsumerInfo, error)
	}
	interval time.Duration
	repair   chan<- event.GenericEvent
	exported map[[3]string]bool
}

func (l *lagCollector) NeedLeaderElection() bool { return true }

func (l *lagCollector) Start(ctx context.Context) error {
	tick := time.NewTicker(l.interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			l.collect(ctx)
		}
	}
}

func (l *lagCollector) collect(ctx context.Context) {
	log := ctrl.LoggerFrom(ctx).WithName("lag")
	var consumers hubflowv1.ConsumerList
	if err := l.client.List(ctx, &consumers); err != nil {
		log.Error(err, "listing consumers")
		return
	}
	byStream := map[string][]*hubflowv1.Consumer{}
	for i := range consumers.Items {
		c := &consumers.Items[i]
		if c.Status.StreamName != "" && c.Status.DurableName != "" && c.DeletionTimestamp.IsZero() {
			byStream[c.Status.StreamName] = append(byStream[c.Status.StreamName], c)
		}
	}
	seen := map[[3]string]bool{}
	for stream, cs := range byStream {
		infos, err := l.hub.ListConsumers(ctx, stream)
		if err != nil {
			log.V(1).Info("cannot list consumers", "stream", stream, "error", err.Error())
			continue
		}
		byDurable := make(map[string]*jetstream.ConsumerInfo, len(infos))
		for _, info := range infos {
			byDurable[info.Name] = info
		}
		for _, c := range cs {
			info := byDurable[c.Status.DurableName]
			if info == nil || l.drifted(ctx, c, info.Config) {
				send(ctx, l.repair, c)
				continue
			}
			key := [3]string{c.Namespace, c.Name, stream}
			seen[key] = true
			pendingGauge.WithLabelValues(key[:]...).Set(float64(info.NumPending))
			ackPendingGauge.WithLabelValues(key[:]...).Set(float64(info.NumAckPending))
			redeliveredGauge.WithLabelValues(key[:]...).Set(float64(info.NumRedelivered))
			if err := l.snapshot(ctx, c, info); err != nil {
				log.Error(err, "writing lag", "consumer", client.ObjectKeyFromObject(c))
			}
		}
	}
	for key := range l.exported {
		if !seen[key] {
			pendingGauge.DeleteLabelValues(key[:]...)
			ackPendingGauge.DeleteLabelValues(key[:]...)
			redeliveredGauge.DeleteLabelValues(key[:]...)
		}
	}
	l.exported = seen
}

// drifted reports whether the server's config of c's durable differs from
// what c compiles to now.
func (l *lagCollector) drifted(ctx context.Context, c *hubflowv1.Consumer, observed jetstream.ConsumerConfig) bool {
	var topic hubflowv1.Topic
	if err := l.client.Get(ctx, client.ObjectKey{Namespace: c.Namespace, Name: c.Spec.TopicRef.Name}, &topic); err != nil {
		return false
	}
	sem, err := semantic.Resolve(semantic.TopicSemantic(&topic), c.Spec.Semantic)
	if err != nil {
		return false
	}
	desired, err := semantic.Consumer(&topic, c, sem)
	if err != nil {
		return false
	}
	// Immutable differences are already reported; re-reconciling cannot fix them.
	changes := semantic.ConsumerChanges(desired, observed)
	return len(changes) > len(changes.Immutable())
}

// snapshot writes the coarse lag to c's status when it changed.
func (l *lagCollector) snapshot(ctx context.Context, c *hubflowv1.Consumer, info *jetstream.ConsumerInfo) error {
	lag := &hubflowv1.ConsumerLag{
		Pending:     coarse(info.NumPending),
		AckPending:  coarse(uint64(max(info.NumAckPending, 0))),
		Redelivered: coarse(uint64(max(info.NumRedelivered, 0))),
	}
	before := c.DeepCopy()
	c.Status.Lag = lag
	return patchStatus(ctx, l.client, c, before, c.Status, before.Status)
}

// coarse keeps two significant digits (1234 -> 1200), so a busy consumer's
// status is rewritten when its backlog moves by a few percent, not on every
// message; the metrics carry the exact figures.
func coarse(n uint64) int64 {
	if n < 100 {
		return int64(n)
	}
	scale := math.Pow10(int(math.Floor(math.Log10(float64(n)))) - 1)
	return int64(math.Floor(float64(n)/scale) * scale)
}
