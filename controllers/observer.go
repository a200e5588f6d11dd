package controllers

import (
	"context"
	"math"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/internal/hub"
	"github.com/hubflow/hubflow/internal/semantic"
)

var (
	lagLabels        = []string{"namespace", "consumer", "topic", "stream"}
	pendingGauge     = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "hubflow_consumer_pending_messages", Help: "Messages in the stream not yet delivered to the consumer."}, lagLabels)
	ackPendingGauge  = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "hubflow_consumer_ack_pending_messages", Help: "Messages delivered to the consumer and not yet acknowledged."}, lagLabels)
	redeliveredGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "hubflow_consumer_redelivered_messages", Help: "Unacknowledged messages delivered more than once."}, lagLabels)
)

func init() {
	metrics.Registry.MustRegister(pendingGauge, ackPendingGauge, redeliveredGauge)
}

// observer looks at the whole hub once per interval, as cheaply as the
// JetStream API allows:
//
//   - one paged listing of every stream (one request per 256 streams) shows
//     each Topic's stream config, so a missing or edited stream is repaired
//     even when no advisory reported it (a stream lost without any API
//     call, e.g. with a node's storage);
//   - consumers are listed (one request per stream) only on streams that
//     can have moved since the last look: new or expired messages, or a
//     consumer that still had a backlog. A drained stream nobody publishes
//     to costs nothing;
//   - each listed consumer's backlog goes to the metrics and, coarsely, to
//     its status, and its config is checked once more for out-of-band edits
//     (the advisory watch reports those through the API audit advisory);
//   - the durables of Consumers that are gone are collected (see sweep).
type observer struct {
	client   client.Client
	hub      hub.Client
	interval time.Duration
	triggers triggers
	// cluster is this manager's cluster name: the sweep collects only
	// durables stamped with it.
	cluster string

	// last is what the previous look saw of each stream.
	last map[string]streamMark
	// exported are the label sets of the lag metrics, to drop stale ones.
	exported map[lagKey]bool
	// swept are the streams the sweep found nothing to collect on.
	swept map[string]sweepMark
}

// lagKey is the label values of a consumer's lag series: namespace,
// consumer, topic, stream (the topic label lets alerts group by flow).
type lagKey [4]string

func lagKeyOf(c *hubflowv1.Consumer, stream string) lagKey {
	return lagKey{c.Namespace, c.Name, c.Spec.TopicRef.Name, stream}
}

// streamMark is enough of a stream's state to tell that nothing moved.
type streamMark struct {
	firstSeq, lastSeq uint64
	// backlog: some consumer had messages pending or unacknowledged.
	backlog bool
}

func (o *observer) NeedLeaderElection() bool { return true }

func (o *observer) Start(ctx context.Context) error {
	tick := time.NewTicker(o.interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if !testHooks.observerPaused.Load() {
				o.observe(ctx)
			}
		}
	}
}

func (o *observer) observe(ctx context.Context) {
	log := ctrl.LoggerFrom(ctx).WithName("observer")
	var topics hubflowv1.TopicList
	var consumers hubflowv1.ConsumerList
	if err := o.client.List(ctx, &topics); err != nil {
		log.Error(err, "listing topics")
		return
	}
	if err := o.client.List(ctx, &consumers); err != nil {
		log.Error(err, "listing consumers")
		return
	}
	streams, err := o.hub.ListStreams(ctx)
	if err != nil {
		log.V(1).Info("cannot list streams", "error", err.Error())
		return
	}
	byName := make(map[string]*jetstream.StreamInfo, len(streams))
	for _, s := range streams {
		byName[s.Config.Name] = s
	}
	o.checkStreams(ctx, topics.Items, byName)

	byStream := map[string][]*hubflowv1.Consumer{}
	for i := range consumers.Items {
		c := &consumers.Items[i]
		if c.Status.StreamName != "" && c.Status.DurableName != "" && c.DeletionTimestamp.IsZero() {
			byStream[c.Status.StreamName] = append(byStream[c.Status.StreamName], c)
		}
	}
	seen := map[lagKey]bool{}
	marks := map[string]streamMark{}
	listed := map[string][]*jetstream.ConsumerInfo{}
	for stream, cs := range byStream {
		info := byName[stream]
		if info == nil {
			continue // the Topic is repaired first; its consumers follow
		}
		mark := streamMark{firstSeq: info.State.FirstSeq, lastSeq: info.State.LastSeq}
		prev, known := o.last[stream]
		if known && !prev.backlog && prev.firstSeq == mark.firstSeq && prev.lastSeq == mark.lastSeq {
			marks[stream] = prev
			for _, c := range cs {
				seen[lagKeyOf(c, stream)] = true // unchanged, still exported
			}
			continue
		}
		durables, err := o.hub.ListConsumers(ctx, stream)
		if err != nil {
			log.V(1).Info("cannot list consumers", "stream", stream, "error", err.Error())
			continue
		}
		listed[stream] = durables
		mark.backlog = o.checkConsumers(ctx, stream, cs, durables, seen)
		marks[stream] = mark
	}
	o.last = marks
	o.sweep(ctx, streams, consumers.Items, listed)
	for key := range o.exported {
		if !seen[key] {
			pendingGauge.DeleteLabelValues(key[:]...)
			ackPendingGauge.DeleteLabelValues(key[:]...)
			redeliveredGauge.DeleteLabelValues(key[:]...)
		}
	}
	o.exported = seen
}

// checkStreams wakes the reconciler of every ready Topic whose stream is
// missing or no longer as declared.
func (o *observer) checkStreams(ctx context.Context, topics []hubflowv1.Topic, streams map[string]*jetstream.StreamInfo) {
	for i := range topics {
		t := &topics[i]
		if !t.DeletionTimestamp.IsZero() || !isReady(t.Status.Conditions) || !isSynced(t.Status.Conditions) {
			continue // being handled, or refused: the reconciler already said why
		}
		desired := semantic.Stream(t)
		s := streams[desired.Name]
		if s == nil || len(semantic.StreamChanges(desired, s.Config)) > 0 {
			send(ctx, o.triggers.topics, t)
		}
	}
}

// checkConsumers exports the backlog of a stream's listed consumers and
// wakes the reconciler of any that is missing or edited. It reports whether
// some consumer still has a backlog.
func (o *observer) checkConsumers(ctx context.Context, stream string, cs []*hubflowv1.Consumer, listed []*jetstream.ConsumerInfo, seen map[lagKey]bool) bool {
	log := ctrl.LoggerFrom(ctx).WithName("observer")
	byDurable := make(map[string]*jetstream.ConsumerInfo, len(listed))
	backlog := false
	for _, info := range listed {
		byDurable[info.Name] = info
		backlog = backlog || info.NumPending > 0 || info.NumAckPending > 0
	}
	for _, c := range cs {
		info := byDurable[c.Status.DurableName]
		if info == nil || o.drifted(ctx, c, info.Config) {
			send(ctx, o.triggers.consumers, c)
			continue
		}
		key := lagKeyOf(c, stream)
		seen[key] = true
		pendingGauge.WithLabelValues(key[:]...).Set(float64(info.NumPending))
		ackPendingGauge.WithLabelValues(key[:]...).Set(float64(info.NumAckPending))
		redeliveredGauge.WithLabelValues(key[:]...).Set(float64(info.NumRedelivered))
		if err := o.snapshot(ctx, c, info); err != nil {
			log.Error(err, "writing lag", "consumer", client.ObjectKeyFromObject(c))
		}
	}
	return backlog
}

// drifted reports whether the server's config of c's durable differs, in
// what can be changed in place, from what c compiles to now.
func (o *observer) drifted(ctx context.Context, c *hubflowv1.Consumer, observed jetstream.ConsumerConfig) bool {
	if !isReady(c.Status.Conditions) || !isSynced(c.Status.Conditions) {
		return false
	}
	var topic hubflowv1.Topic
	if err := o.client.Get(ctx, client.ObjectKey{Namespace: c.Namespace, Name: c.Spec.TopicRef.Name}, &topic); err != nil {
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
	changes := semantic.ConsumerChanges(desired, observed)
	return len(changes) > len(changes.Immutable())
}

// snapshot writes the coarse lag to c's status when it changed.
func (o *observer) snapshot(ctx context.Context, c *hubflowv1.Consumer, info *jetstream.ConsumerInfo) error {
	before := c.DeepCopy()
	c.Status.Lag = lagOf(info)
	return patchStatus(ctx, o.client, c, before, c.Status, before.Status)
}

// lagOf is the coarse status snapshot of a consumer's backlog. The
// reconciler records it from the info it reads anyway, so a new consumer's
// first snapshot costs no extra write.
func lagOf(info *jetstream.ConsumerInfo) *hubflowv1.ConsumerLag {
	return &hubflowv1.ConsumerLag{
		Pending:     coarse(info.NumPending),
		AckPending:  coarse(uint64(max(info.NumAckPending, 0))),
		Redelivered: coarse(uint64(max(info.NumRedelivered, 0))),
	}
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
