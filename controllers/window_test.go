package controllers_test

import (
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/controllers"
	"github.com/hubflow/hubflow/internal/semantic"
)

// Shrinking an ExactlyOnce Topic's duplicate window below a registered
// producer's retry horizon must not open a window for stored duplicates:
// the stream keeps the horizon, the Topic says why, the Producer is refused
// until it is fixed, and the shrink goes through once it is.
func TestDuplicateWindowShrinkIsHeldForRegisteredProducers(t *testing.T) {
	ns := namespace(t)
	topic := newTopic(ns, "payments", hubflowv1.ExactlyOnce)
	prod := newProducer(ns, "checkout", "payments")
	create(t, topic, prod)
	ready(t, topic)
	ready(t, prod)
	horizon := semantic.ProducerRetryHorizon(prod) // 32.5s by default

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
