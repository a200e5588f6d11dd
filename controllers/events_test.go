package controllers_test

import (
	"slices"
	"testing"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
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

// A whole flow applied at once (kubectl apply -f flow.yaml, a GitOps sync)
// reaches Ready without status writes that only say "not yet": the manager
// waits for a Topic it has not reconciled yet instead of writing the
// registrant's semantic alone, which the Ready write says a moment later
// (issue 15: one status write per object on the way to Ready). Every write
// before Ready names a condition.
func TestAFlowAppliedAtOnceWritesNoEmptyStatus(t *testing.T) {
	ns := namespace(t)
	watches := map[string]watch.Interface{}
	for kind, list := range map[string]client.ObjectList{"Producer": &hubflowv1.ProducerList{}, "Consumer": &hubflowv1.ConsumerList{}} {
		w, err := watcher.Watch(ctx, list, client.InNamespace(ns))
		if err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
		watches[kind] = w
	}
	topic := newTopic(ns, "orders", hubflowv1.AtLeastOnce)
	prod := newProducer(ns, "checkout", "orders")
	cons := newConsumer(ns, "billing", "orders")
	create(t, topic, prod, cons)
	for kind, w := range watches {
		writes := 0
		for done := false; !done; {
			select {
			case e := <-w.ResultChan():
				if e.Type != watch.Modified {
					continue
				}
				writes++
				obj := e.Object.(client.Object)
				conds := conditionsOf(obj)
				if len(conds) == 0 {
					t.Errorf("%s %s: status write %d names no condition: %+v", kind, obj.GetName(), writes, statusOf(obj))
				}
				done = meta.IsStatusConditionTrue(conds, hubflowv1.ConditionReady)
			case <-time.After(wait):
				t.Fatalf("%s not Ready after %d status writes in %s", kind, writes, wait)
			}
		}
		t.Logf("%s: %d status write(s) on the way to Ready", kind, writes)
	}
}

func statusOf(obj client.Object) any {
	switch o := obj.(type) {
	case *hubflowv1.Producer:
		return o.Status
	case *hubflowv1.Consumer:
		return o.Status
	}
	return nil
}
