// Package restart proves that what the manager promises over time survives
// the manager's own restart: state that must outlive a process lives on the
// hub (stream metadata) or in Kubernetes, never only in memory.
package restart

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/controllers"
	"github.com/hubflow/hubflow/internal/semantic"
	"github.com/hubflow/hubflow/internal/testhub"
	"github.com/hubflow/hubflow/internal/testkube"
	"github.com/hubflow/hubflow/internal/testnats"
)

// grace is how long a window stays held for a deleted Producer here
// (--window-hold-grace; the credentials' lifetime in production).
const grace = 20 * time.Second

// A Topic holds its duplicate window for a deleted Producer whose
// workloads may still retry (issue 9, item 6). The manager restarts in the
// middle of that hold: the new manager keeps the window, since the hold is
// recorded in the stream's metadata, and lets the declared shrink through
// only once the hold is over.
func TestWindowHoldSurvivesAManagerRestart(t *testing.T) {
	ctrl.SetLogger(logr.Discard())
	ctx := context.Background()
	opts := controllers.Options{ResyncInterval: time.Minute, ObserveInterval: time.Second, MaxConcurrentReconciles: 2, WindowHoldGrace: grace}
	stack, err := testhub.StartStack(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stack.Stop() })
	k8s := stack.Env.Client
	js := testnats.Connect(t, stack.NATS.URL())

	ns := testkube.Namespace(t, k8s)
	topic := testkube.Topic(ns, "payments", hubflowv1.ExactlyOnce)
	prod := testkube.Producer(ns, "checkout", "payments")
	for _, o := range []client.Object{topic, prod} {
		if err := k8s.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	condition := func(o client.Object, typ string, status metav1.ConditionStatus, reason string) metav1.Condition {
		t.Helper()
		return testkube.WaitCondition(t, k8s, 30*time.Second, o, typ, status, reason)
	}
	condition(topic, hubflowv1.ConditionReady, metav1.ConditionTrue, controllers.ReasonReady)
	condition(prod, hubflowv1.ConditionReady, metav1.ConditionTrue, controllers.ReasonReady)
	horizon := semantic.ProducerRetryHorizon(prod)
	window := func() time.Duration {
		t.Helper()
		s, err := js.Stream(ctx, semantic.StreamName(ns, "payments"))
		if err != nil {
			t.Fatal(err)
		}
		return s.CachedInfo().Config.Duplicates
	}

	if err := k8s.Get(ctx, client.ObjectKeyFromObject(topic), topic); err != nil {
		t.Fatal(err)
	}
	topic.Spec.DuplicateWindow = &metav1.Duration{Duration: 10 * time.Second}
	if err := k8s.Update(ctx, topic); err != nil {
		t.Fatal(err)
	}
	condition(topic, hubflowv1.ConditionSynced, metav1.ConditionFalse, controllers.ReasonDuplicateWindowHeld)
	if err := k8s.Delete(ctx, prod); err != nil {
		t.Fatal(err)
	}
	testkube.Eventually(t, 30*time.Second, func() error {
		if c := condition(topic, hubflowv1.ConditionSynced, metav1.ConditionFalse, controllers.ReasonDuplicateWindowHeld); !strings.Contains(c.Message, "gone") {
			return fmt.Errorf("the Topic does not say the window is held for a deleted Producer: %s", c.Message)
		}
		return nil
	})
	deleted := time.Now()

	if err := stack.Manager.Stop(); err != nil {
		t.Fatal(err)
	}
	stack.Manager = nil
	mgr, err := testhub.Start(stack.Env.Config, stack.Env.Scheme, stack.NATS.URL(), opts)
	if err != nil {
		t.Fatal(err)
	}
	stack.Manager = mgr
	restarted := time.Now()

	// Until the hold ends, every look at the stream finds the window kept.
	for time.Since(deleted) < grace-3*time.Second {
		if got := window(); got < horizon {
			t.Fatalf("%s after the restart the window is %s: the new manager dropped the hold (the deleted Producer's workloads retry for up to %s)",
				time.Since(restarted).Round(time.Millisecond), got, horizon)
		}
		time.Sleep(200 * time.Millisecond)
	}
	condition(topic, hubflowv1.ConditionSynced, metav1.ConditionTrue, controllers.ReasonReconciled)
	if got := window(); got != 10*time.Second {
		t.Errorf("after the hold the window is %s, want the declared 10s", got)
	}
	t.Logf("window held at %s or more for %s after the restart, then shrunk to the declared 10s", horizon, time.Since(restarted).Round(time.Second))
}
