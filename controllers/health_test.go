package controllers_test

import (
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/hubflow/hubflow/controllers"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/internal/semantic"
)

// kstatusEventually waits until kstatus (what Flux and cli-utils use to
// decide a rollout is done) computes want for obj as stored by the API server.
func kstatusEventually(t *testing.T, obj client.Object, want status.Status) {
	t.Helper()
	eventually(t, wait, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
		if err != nil {
			return err
		}
		res, err := status.Compute(&unstructured.Unstructured{Object: u})
		if err != nil {
			return err
		}
		if res.Status != want {
			return fmt.Errorf("kstatus %s (%s), want %s; conditions %+v", res.Status, res.Message, want, conditionsOf(obj))
		}
		return nil
	})
}

// A GitOps rollout fails at once, with the reason, for what can never become
// Ready without a spec change, and waits for what only needs time.
func TestKstatusTellsWaitingFromFailed(t *testing.T) {
	ns := namespace(t)
	early := newConsumer(ns, "early", "orders")
	create(t, early)
	kstatusEventually(t, early, status.InProgressStatus) // its Topic is not there yet

	create(t, newTopic(ns, "orders", hubflowv1.AtMostOnce))
	kstatusEventually(t, early, status.CurrentStatus)

	greedy := newConsumer(ns, "greedy", "orders")
	greedy.Spec.Semantic = semPtr(hubflowv1.ExactlyOnce)
	create(t, greedy)
	kstatusEventually(t, greedy, status.FailedStatus)

	// The failure is announced once, as a Warning naming the reason.
	e := eventFor(t, greedy, semantic.ReasonSemanticStrongerThanTopic)
	if e.Type != corev1.EventTypeWarning || !strings.Contains(e.Note, "spec.semantic") {
		t.Errorf("event %s %q: want a Warning naming spec.semantic", e.Type, e.Note)
	}
}

// A Topic refused because another stream holds its subjects names that
// stream and its owner, fails kstatus at once, and is announced by one
// Warning event rather than retried as a reconciler error.
func TestSubjectsOverlapNamesTheOtherParty(t *testing.T) {
	ns := namespace(t)
	holder := newTopic(ns, "orders", hubflowv1.AtLeastOnce)
	create(t, holder)
	ready(t, holder)

	squatter := newTopic(ns, "orders-copy", hubflowv1.AtLeastOnce)
	squatter.Spec.Subjects = []string{ns + ".orders.>", ns + ".orders"}
	create(t, squatter)
	c := condition(t, squatter, hubflowv1.ConditionReady, metav1.ConditionFalse, controllers.ReasonSubjectsOverlap)
	stream := semantic.StreamName(ns, "orders")
	if !strings.Contains(c.Message, stream) || !strings.Contains(c.Message, ns+"/orders") {
		t.Errorf("message %q does not name stream %s and its owner %s/orders", c.Message, stream, ns)
	}
	kstatusEventually(t, squatter, status.FailedStatus)
	e := eventFor(t, squatter, controllers.ReasonSubjectsOverlap)
	if e.Type != corev1.EventTypeWarning || !strings.Contains(e.Note, stream) {
		t.Errorf("event %s %q: want a Warning naming %s", e.Type, e.Note, stream)
	}
}
