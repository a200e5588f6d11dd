package controllers_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/controllers"
	"github.com/hubflow/hubflow/internal/semantic"
)

// Shrinking an ExactlyOnce Topic's duplicate window below a registered
// producer's retry horizon must not open a window for stored duplicates:
// the stream keeps the horizon, the Topic says why, the Producer is refused
// until it is fixed, and the shrink goes through once it is.
func TestDuplicateWindowShrinkIsHeldForRegisteredProducers(t *testing.T) {
	ns, topic, prod, horizon := exactlyOnceFlow(t) // horizon: 32.5s by default

	edit(t, topic, func() { topic.Spec.DuplicateWindow = &metav1.Duration{Duration: 10 * time.Second} })
	condition(t, topic, hubflowv1.ConditionSynced, metav1.ConditionFalse, controllers.ReasonDuplicateWindowHeld)
	ready(t, topic)
	s, err := js.Stream(ctx, semantic.StreamName(ns, "payments"))
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().Config.Duplicates; got < horizon {
		t.Fatalf("the stream's duplicate window is %s, below the producer's retry horizon %s", got, horizon)
	}
	condition(t, prod, hubflowv1.ConditionReady, metav1.ConditionFalse, semantic.ReasonRetryHorizonTooLong)

	// A producer whose horizon fits lets the shrink through.
	edit(t, prod, func() {
		prod.Spec.Publish = &hubflowv1.PublishPolicy{AckTimeout: &metav1.Duration{Duration: 2 * time.Second}, Retries: ptrTo(int32(2)),
			RetryWait: &metav1.Duration{Duration: time.Second}}
	})
	ready(t, prod)
	condition(t, topic, hubflowv1.ConditionSynced, metav1.ConditionTrue, "")
	eventually(t, wait, func() error {
		s, err := js.Stream(ctx, semantic.StreamName(ns, "payments"))
		if err != nil {
			return err
		}
		if got := s.CachedInfo().Config.Duplicates; got != 10*time.Second {
			return fmt.Errorf("duplicate window %s, want 10s", got)
		}
		return nil
	})
}

// A deleted Producer's workloads may go on retrying with the binding they
// have: the window held for it outlives it by the grace (the credentials'
// lifetime), then the declared shrink goes through.
func TestDuplicateWindowOutlivesADeletedProducer(t *testing.T) {
	ns, topic, prod, horizon := exactlyOnceFlow(t)
	edit(t, topic, func() { topic.Spec.DuplicateWindow = &metav1.Duration{Duration: 10 * time.Second} })
	condition(t, topic, hubflowv1.ConditionSynced, metav1.ConditionFalse, controllers.ReasonDuplicateWindowHeld)

	if err := k8s.Delete(ctx, prod); err != nil {
		t.Fatal(err)
	}
	window := func() time.Duration {
		s, err := js.Stream(ctx, semantic.StreamName(ns, "payments"))
		if err != nil {
			t.Fatal(err)
		}
		return s.CachedInfo().Config.Duplicates
	}
	eventually(t, wait, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(topic), topic); err != nil {
			return err
		}
		c := meta.FindStatusCondition(topic.Status.Conditions, hubflowv1.ConditionSynced)
		if c == nil || !strings.Contains(c.Message, "gone") {
			return fmt.Errorf("the Topic does not say the window is held for a deleted Producer: %+v", c)
		}
		return nil
	})
	if got := window(); got < horizon {
		t.Fatalf("the window shrank to %s once the Producer was deleted; its workloads retry for up to %s", got, horizon)
	}
	condition(t, topic, hubflowv1.ConditionSynced, metav1.ConditionTrue, "")
	if got := window(); got != 10*time.Second {
		t.Errorf("after the grace the window is %s, want the declared 10s", got)
	}
}

// exactlyOnceFlow is a Ready ExactlyOnce Topic with one Ready Producer, and
// that Producer's retry horizon.
func exactlyOnceFlow(t *testing.T) (string, *hubflowv1.Topic, *hubflowv1.Producer, time.Duration) {
	t.Helper()
	ns := namespace(t)
	topic := newTopic(ns, "payments", hubflowv1.ExactlyOnce)
	prod := newProducer(ns, "checkout", "payments")
	create(t, topic, prod)
	ready(t, topic)
	ready(t, prod)
	return ns, topic, prod, semantic.ProducerRetryHorizon(prod)
}
