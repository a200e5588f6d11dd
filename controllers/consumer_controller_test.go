package controllers_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/controllers"
	"github.com/hubflow/hubflow/internal/semantic"
)

// A Consumer created before its Topic waits with a clear reason and
// recovers by itself when the Topic appears.
func TestConsumerWaitsForItsTopic(t *testing.T) {
	ns := namespace(t)
	cons := newConsumer(ns, "mailer", "notifications")
	prod := newProducer(ns, "signup", "notifications")
	create(t, cons, prod)
	condition(t, cons, hubflowv1.ConditionReady, metav1.ConditionFalse, controllers.ReasonTopicNotFound)
	condition(t, prod, hubflowv1.ConditionReady, metav1.ConditionFalse, controllers.ReasonTopicNotFound)

	create(t, newTopic(ns, "notifications", hubflowv1.AtLeastOnce))
	ready(t, cons)
	ready(t, prod)
}

// Rules that span objects are the reconciler's: a semantic stronger than
// the Topic's, or subjects outside it, are refused with a reason naming why.
func TestCrossObjectRulesAreReported(t *testing.T) {
	ns := namespace(t)
	create(t, newTopic(ns, "telemetry", hubflowv1.AtMostOnce))
	greedy := newConsumer(ns, "billing", "telemetry")
	greedy.Spec.Semantic = semPtr(hubflowv1.ExactlyOnce)
	stray := newConsumer(ns, "stray", "telemetry")
	stray.Spec.FilterSubjects = []string{"elsewhere.>"}
	outside := newProducer(ns, "outside", "telemetry")
	outside.Spec.Subjects = []string{ns + ".other"}
	create(t, greedy, stray, outside)

	c := condition(t, greedy, hubflowv1.ConditionReady, metav1.ConditionFalse, semantic.ReasonSemanticStrongerThanTopic)
	if !containsText(c.Message, "spec.semantic") {
		t.Errorf("message %q does not name the field", c.Message)
	}
	c = condition(t, stray, hubflowv1.ConditionReady, metav1.ConditionFalse, semantic.ReasonSubjectOutsideTopic)
	if !containsText(c.Message, "spec.filterSubjects[0]") {
		t.Errorf("message %q does not name the field", c.Message)
	}
	condition(t, outside, hubflowv1.ConditionReady, metav1.ConditionFalse, semantic.ReasonSubjectOutsideTopic)
	if _, err := js.Consumer(ctx, semantic.StreamName(ns, "telemetry"), "billing"); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Errorf("a refused consumer must not exist on the hub, got %v", err)
	}

	// Fixing the spec is enough to recover. (The semantic cannot be fixed
	// in place: admission refuses AtMostOnce <-> acknowledged changes.)
	stray.Spec.FilterSubjects = []string{ns + ".telemetry"}
	if err := k8s.Update(ctx, stray); err != nil {
		t.Fatal(err)
	}
	ready(t, stray)
}

// Spec changes reach the durable; an out-of-band edit of the durable (for
// which the server sends no advisory) is undone by the observer, which reads
// the configs of the consumers of every stream that moved.
func TestConsumerUpdatesAndDriftRepair(t *testing.T) {
	ns := namespace(t)
	create(t, newTopic(ns, "jobs", hubflowv1.AtLeastOnce))
	cons := newConsumer(ns, "worker", "jobs")
	create(t, cons)
	ready(t, cons)
	stream := semantic.StreamName(ns, "jobs")

	cons.Spec.MaxAckPending = ptrTo(int32(10))
	cons.Spec.AckWait = &metav1.Duration{Duration: 5 * time.Second}
	if err := k8s.Update(ctx, cons); err != nil {
		t.Fatal(err)
	}
	durableHas := func(ackWait time.Duration, maxAckPending int) {
		t.Helper()
		eventually(t, wait, func() error {
			c, err := js.Consumer(ctx, stream, "worker")
			if err != nil {
				return err
			}
			cfg := c.CachedInfo().Config
			if cfg.AckWait != ackWait || cfg.MaxAckPending != maxAckPending {
				return fmt.Errorf("ackWait %s maxAckPending %d", cfg.AckWait, cfg.MaxAckPending)
			}
			return nil
		})
	}
	durableHas(5*time.Second, 10)
	ready(t, cons)

	c, err := js.Consumer(ctx, stream, "worker")
	if err != nil {
		t.Fatal(err)
	}
	edited := c.CachedInfo().Config
	edited.MaxAckPending = 999
	if _, err := js.UpdateConsumer(ctx, stream, edited); err != nil {
		t.Fatal(err)
	}
	// The observer re-reads the consumers of a stream that moved; on a
	// quiet stream the edit waits for the backstop resync (10m by default),
	// which this suite sets to an hour. A message makes the stream move.
	if _, err := js.Publish(ctx, ns+".jobs", []byte("job")); err != nil {
		t.Fatal(err)
	}
	durableHas(5*time.Second, 10)
}

// Deleting a Consumer deletes its durable; the messages stay in the stream.
func TestConsumerDeletionRemovesTheDurable(t *testing.T) {
	ns := namespace(t)
	create(t, newTopic(ns, "events", hubflowv1.AtLeastOnce))
	cons := newConsumer(ns, "indexer", "events")
	create(t, cons)
	ready(t, cons)
	stream := semantic.StreamName(ns, "events")
	if _, err := js.Publish(ctx, ns+".events", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Delete(ctx, cons); err != nil {
		t.Fatal(err)
	}
	eventually(t, wait, func() error {
		_, err := js.Consumer(ctx, stream, "indexer")
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			return nil
		}
		return fmt.Errorf("durable still there (%v)", err)
	})
	s, err := js.Stream(ctx, stream)
	if err != nil || s.CachedInfo().State.Msgs != 1 {
		t.Fatalf("stream lost its message: %v", err)
	}
}

// Lag reaches the metrics and, coarsely, the status.
func TestConsumerLagIsExported(t *testing.T) {
	ns := namespace(t)
	create(t, newTopic(ns, "clicks", hubflowv1.AtLeastOnce))
	cons := newConsumer(ns, "counter", "clicks")
	create(t, cons)
	ready(t, cons)
	for range 7 {
		if _, err := js.Publish(ctx, ns+".clicks", []byte("click")); err != nil {
			t.Fatal(err)
		}
	}
	stream := semantic.StreamName(ns, "clicks")
	eventually(t, wait, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(cons), cons); err != nil {
			return err
		}
		if cons.Status.Lag == nil || cons.Status.Lag.Pending != 7 {
			return fmt.Errorf("lag %+v", cons.Status.Lag)
		}
		labels := map[string]string{"namespace": ns, "consumer": "counter", "topic": "clicks", "stream": stream}
		if got, err := metricValue("hubflow_consumer_pending_messages", labels); err != nil || got != 7 {
			return fmt.Errorf("pending metric %v (%v)", got, err)
		}
		return nil
	})
}

// gauge reads one lag series from the manager's registry, as a Prometheus
// scrape would.
func gauge(name, namespace, consumer, stream string) (float64, error) {
	return metricValue(name, map[string]string{"namespace": namespace, "consumer": consumer, "stream": stream})
}

// metricValue reads the gauge or counter of name whose labels include want.
func metricValue(name string, want map[string]string) (float64, error) {
	families, err := metrics.Registry.Gather()
	if err != nil {
		return 0, err
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue series
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue(), nil
			}
			return m.GetGauge().GetValue(), nil
		}
	}
	return 0, fmt.Errorf("no %s%v", name, want)
}
