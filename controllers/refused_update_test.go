package controllers_test

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/controllers"
	"github.com/hubflow/hubflow/internal/semantic"
)

// A Topic update JetStream refuses leaves the old stream serving: the Topic
// says so (Ready=True, Synced=False naming the refusal) and its Producers
// and Consumers stay usable, including when they reconcile afterwards.
func TestRefusedTopicUpdateKeepsTheFlowServing(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(ns string, topic *hubflowv1.Topic)
		reason string
	}{
		{
			name:   "replicas above the cluster size",
			edit:   func(_ string, topic *hubflowv1.Topic) { topic.Spec.Replicas = 3 },
			reason: controllers.ReasonReplicasNeedCluster,
		},
		{
			name: "subject overlapping another Topic",
			edit: func(ns string, topic *hubflowv1.Topic) {
				topic.Spec.Subjects = []string{ns + ".orders", ns + ".orders.>", ns + ".other.x"}
			},
			reason: controllers.ReasonSubjectsOverlap,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := namespace(t)
			other := newTopic(ns, "other", hubflowv1.AtLeastOnce)
			topic := newTopic(ns, "orders", hubflowv1.AtLeastOnce)
			prod := newProducer(ns, "shop", "orders")
			cons := newConsumer(ns, "billing", "orders")
			create(t, other, topic, prod, cons)
			ready(t, other)
			ready(t, prod)
			ready(t, cons)

			ready(t, topic)
			edit(t, topic, func() { tt.edit(ns, topic) })
			c := condition(t, topic, hubflowv1.ConditionSynced, metav1.ConditionFalse, tt.reason)
			if !containsText(c.Message, "keeps serving") {
				t.Errorf("Synced message %q does not say the stream keeps serving", c.Message)
			}
			ready(t, topic)
			if topic.Status.StreamName != semantic.StreamName(ns, "orders") {
				t.Errorf("status.streamName is %q", topic.Status.StreamName)
			}

			// A spec change makes each registrant reconcile against the
			// refused Topic; it stays Ready.
			edit(t, prod, func() { prod.Spec.Publish = &hubflowv1.PublishPolicy{Retries: ptrTo(int32(2))} })
			edit(t, cons, func() { cons.Spec.AckWait = &metav1.Duration{Duration: 40 * time.Second} })
			ready(t, prod)
			ready(t, cons)
			if _, err := js.Publish(ctx, ns+".orders", []byte("still served")); err != nil {
				t.Errorf("the old stream stopped serving: %v", err)
			}
		})
	}
}

// edit applies change to the latest version of obj, retrying on conflicts
// with the operator's own writes.
func edit(t *testing.T, obj client.Object, change func()) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		change()
		return k8s.Update(ctx, obj)
	})
	if err != nil {
		t.Fatal(err)
	}
}
