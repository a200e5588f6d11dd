package controllers_test

import (
	"slices"
	"testing"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
)

// Creating a flow records no Normal event for what its status already says
// (a stream created, a binding written): on a large apply those were most of
// the operator's writes. A change to what exists is still recorded.
func TestCreatingAFlowRecordsNoRoutineEvents(t *testing.T) {
	ns := namespace(t)
	topic := newTopic(ns, "orders", hubflowv1.AtLeastOnce)
	prod := newProducer(ns, "checkout", "orders")
	cons := newConsumer(ns, "billing", "orders")
	create(t, topic, prod, cons)
	for _, o := range []client.Object{topic, prod, cons} {
		ready(t, o)
	}

	// The recorder writes events in order: once the update's event is
	// there, any event of the creation would be too.
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(topic), topic); err != nil {
		t.Fatal(err)
	}
	topic.Spec.Retention = &hubflowv1.RetentionLimits{MaxAge: &metav1.Duration{Duration: time.Hour}}
	if err := k8s.Update(ctx, topic); err != nil {
		t.Fatal(err)
	}
	eventFor(t, topic, "StreamUpdated")

	var list eventsv1.EventList
	if err := k8s.List(ctx, &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	routine := []string{"StreamCreated", "ConsumerCreated", "BindingCreated", "CredentialsIssued"}
	for _, e := range list.Items {
		if slices.Contains(routine, e.Reason) {
			t.Errorf("event %s on %s %s: %s", e.Reason, e.Regarding.Kind, e.Regarding.Name, e.Note)
		}
	}
}
