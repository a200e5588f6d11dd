package controllers_test

import (
	"strings"
	"testing"

	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
)

// A Topic's semantic cannot cross the AtMostOnce boundary: the Consumers
// that inherit it would keep a durable whose ack policy JetStream cannot
// change, while their binding said otherwise. Within the acknowledged
// semantics the ack policy is the same and the change is accepted.
func TestTopicSemanticCannotCrossTheAtMostOnceBoundary(t *testing.T) {
	ns := namespace(t)
	for _, tt := range []struct {
		from, to hubflowv1.DeliverySemantic
		refused  bool
	}{
		{hubflowv1.AtLeastOnce, hubflowv1.AtMostOnce, true},
		{hubflowv1.AtMostOnce, hubflowv1.ExactlyOnce, true},
		{hubflowv1.AtLeastOnce, hubflowv1.ExactlyOnce, false},
	} {
		name := strings.ToLower(string(tt.from) + "-" + string(tt.to))
		topic := newTopic(ns, name, tt.from)
		create(t, topic)
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(topic), topic); err != nil {
				return err
			}
			topic.Spec.Semantic = tt.to
			return k8s.Update(ctx, topic)
		})
		switch {
		case tt.refused && err == nil:
			t.Errorf("%s → %s was accepted", tt.from, tt.to)
		case tt.refused && !strings.Contains(err.Error(), "spec.semantic"):
			t.Errorf("%s → %s: the refusal does not name the field: %v", tt.from, tt.to, err)
		case !tt.refused && err != nil:
			t.Errorf("%s → %s was refused: %v", tt.from, tt.to, err)
		}
	}
}
