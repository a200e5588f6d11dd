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

// The metrics operators alert on follow the objects: a Ready gauge per
// object (gone with the object), failures counted by reason, the hub
// connection's state.
func TestOperatorMetrics(t *testing.T) {
	ns := namespace(t)
	create(t, newTopic(ns, "metrics", hubflowv1.AtMostOnce))
	good := newConsumer(ns, "good", "metrics")
	bad := newConsumer(ns, "bad", "metrics")
	bad.Spec.Semantic = semPtr(hubflowv1.ExactlyOnce)
	create(t, good, bad)
	ready(t, good)
	condition(t, bad, hubflowv1.ConditionReady, metav1.ConditionFalse, semantic.ReasonSemanticStrongerThanTopic)

	readyOf := func(name string) (float64, error) {
		return metricValue("hubflow_object_ready", map[string]string{"kind": "Consumer", "namespace": ns, "name": name})
	}
	eventually(t, wait, func() error {
		if v, err := readyOf("good"); err != nil || v != 1 {
			return fmt.Errorf("good: hubflow_object_ready %v (%v), want 1", v, err)
		}
		if v, err := readyOf("bad"); err != nil || v != 0 {
			return fmt.Errorf("bad: hubflow_object_ready %v (%v), want 0", v, err)
		}
		if v, err := metricValue("hubflow_reconcile_failures_total", map[string]string{"kind": "Consumer", "reason": semantic.ReasonSemanticStrongerThanTopic}); err != nil || v < 1 {
			return fmt.Errorf("hubflow_reconcile_failures_total %v (%v), want at least 1", v, err)
		}
		if v, err := metricValue("hubflow_hub_connected", nil); err != nil || v != 1 {
			return fmt.Errorf("hubflow_hub_connected %v (%v), want 1", v, err)
		}
		return nil
	})

	if err := k8s.Delete(ctx, bad); err != nil {
		t.Fatal(err)
	}
	eventually(t, wait, func() error {
		if v, err := readyOf("bad"); err == nil {
			return fmt.Errorf("a deleted Consumer still has hubflow_object_ready %v", v)
		}
		return nil
	})
}
