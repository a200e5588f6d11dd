package controllers_test

import (
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/controllers"
	"github.com/hubflow/hubflow/internal/semantic"
)

// With NATS down, objects say so and keep their desired state; when it
// returns they converge by themselves, changes made meanwhile included.
func TestHubOutageAndRecovery(t *testing.T) {
	ns := namespace(t)
	topic := newTopic(ns, "orders", hubflowv1.AtLeastOnce)
	create(t, topic)
	ready(t, topic)

	hubNATS.Stop()
	restarted := false
	defer func() {
		if !restarted {
			_ = hubNATS.Restart()
		}
	}()
	topic.Spec.Retention = &hubflowv1.RetentionLimits{MaxAge: &metav1.Duration{Duration: 2 * time.Hour}}
	if err := k8s.Update(ctx, topic); err != nil {
		t.Fatal(err)
	}
	late := newTopic(ns, "refunds", hubflowv1.AtLeastOnce)
	create(t, late)
	c := condition(t, topic, hubflowv1.ConditionReady, metav1.ConditionFalse, controllers.ReasonHubUnreachable)
	t.Logf("while down: %s", c.Message)
	condition(t, late, hubflowv1.ConditionReady, metav1.ConditionFalse, controllers.ReasonHubUnreachable)

	if err := hubNATS.Restart(); err != nil {
		t.Fatal(err)
	}
	restarted = true
	ready(t, topic)
	ready(t, late)
	s, err := js.Stream(ctx, semantic.StreamName(ns, "orders"))
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().Config.MaxAge; got != 2*time.Hour {
		t.Errorf("change made during the outage not applied: maxAge %s", got)
	}
}

// Replicas > 1 on a server that is not clustered is refused by the server;
// the Topic names the reason instead of failing silently.
func TestReplicasNeedACluster(t *testing.T) {
	ns := namespace(t)
	topic := newTopic(ns, "ledger", hubflowv1.ExactlyOnce)
	topic.Spec.Replicas = 3
	create(t, topic)
	condition(t, topic, hubflowv1.ConditionReady, metav1.ConditionFalse, controllers.ReasonReplicasNeedCluster)
	// A refused Topic is retried with backoff; remove it so later tests
	// measure an idle hub.
	if err := k8s.Delete(ctx, topic); err != nil {
		t.Fatal(err)
	}
}

// An idle hub costs no API-server writes, and its only JetStream requests
// are the observer's: one stream listing per look, plus one consumer
// listing per stream whose consumers still have a backlog.
func TestIdleHubMakesNoWritesAndOnlyObserverRequests(t *testing.T) {
	ns := namespace(t)
	topic := newTopic(ns, "quiet", hubflowv1.AtLeastOnce)
	cons := newConsumer(ns, "listener", "quiet")
	prod := newProducer(ns, "speaker", "quiet")
	create(t, topic, cons, prod)
	ready(t, topic)
	ready(t, cons)
	ready(t, prod)
	eventually(t, wait, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(cons), cons); err != nil {
			return err
		}
		if cons.Status.Lag == nil {
			return fmt.Errorf("no lag snapshot yet")
		}
		return nil
	})
	// Let the reconciles the registrations triggered settle.
	time.Sleep(2 * testObserve)

	// The binding Secrets too: a no-op reconcile rewrites nothing.
	bindings := []client.Object{
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "listener-binding"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "speaker-binding"}},
	}
	versions := func() [5]string {
		var v [5]string
		for i, o := range append([]client.Object{topic, cons, prod}, bindings...) {
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(o), o); err != nil {
				t.Fatal(err)
			}
			v[i] = o.GetResourceVersion()
		}
		return v
	}
	// Streams whose consumers still have a backlog are listed every look;
	// drained ones cost nothing beyond the one stream listing.
	streamsWithBacklog := func() int {
		var list hubflowv1.ConsumerList
		if err := k8s.List(ctx, &list); err != nil {
			t.Fatal(err)
		}
		streams := map[string]bool{}
		for _, c := range list.Items {
			if l := c.Status.Lag; l != nil && (l.Pending > 0 || l.AckPending > 0) && c.DeletionTimestamp.IsZero() {
				streams[c.Status.StreamName] = true
			}
		}
		return len(streams)
	}
	apiRequests := func() uint64 {
		n, err := hubNATS.APIRequests()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}

	// Retries scheduled by earlier tests (an outage, refused objects) may
	// still be draining; the steady state is what is measured, over up to
	// three windows.
	for attempt := 1; ; attempt++ {
		before, requestsBefore, start := versions(), apiRequests(), time.Now()
		time.Sleep(10 * testObserve)
		after, requests, elapsed := versions(), apiRequests()-requestsBefore, time.Since(start)

		if before != after {
			t.Fatalf("idle objects were written: resourceVersions %v -> %v", before, after)
		}
		ticks := int(elapsed/testObserve) + 1
		backlog := streamsWithBacklog()
		budget := uint64(ticks * (1 + backlog))
		t.Logf("idle for %s: %d JetStream API requests (budget %d = %d looks x (1 stream listing + %d streams with a backlog))",
			elapsed.Round(time.Millisecond), requests, budget, ticks, backlog)
		if requests <= budget {
			return
		}
		if attempt == 3 {
			t.Fatalf("idle hub made %d JetStream API requests, more than the observer's %d", requests, budget)
		}
	}
}
