package controllers_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/controllers"
	"github.com/hubflow/hubflow/internal/hub"
	"github.com/hubflow/hubflow/internal/semantic"
	"github.com/hubflow/hubflow/pkg/binding"
)

// A durable edit JetStream refuses leaves the durable serving with its
// earlier settings, and the Consumer's binding keeps up with that durable:
// a binding Secret lost meanwhile comes back, describing the durable as it
// runs, not the refused edit.
func TestRefusedDurableEditKeepsItsBinding(t *testing.T) {
	ns := namespace(t)
	topic := newTopic(ns, "orders", hubflowv1.AtLeastOnce)
	cons := newConsumer(ns, "billing", "orders")
	cons.Spec.MaxAckPending = ptrTo(int32(50))
	create(t, topic, cons)
	ready(t, topic)
	ready(t, cons)
	stream := semantic.StreamName(ns, "orders")

	// A platform team caps the stream's consumers; hubflow leaves what a
	// Topic does not declare as it is.
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	cfg.ConsumerLimits = jetstream.StreamConsumerLimits{MaxAckPending: 100}
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}

	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(cons), cons); err != nil {
			return err
		}
		cons.Spec.MaxAckPending = ptrTo(int32(500))
		cons.Spec.AckWait = &metav1.Duration{Duration: 45 * time.Second}
		return k8s.Update(ctx, cons)
	}); err != nil {
		t.Fatal(err)
	}
	refusal := condition(t, cons, hubflowv1.ConditionSynced, metav1.ConditionFalse, "")
	condition(t, cons, hubflowv1.ConditionReady, metav1.ConditionTrue, "")
	c, err := js.Consumer(ctx, stream, "billing")
	if err != nil {
		t.Fatal(err)
	}
	running := c.CachedInfo().Config
	if running.MaxAckPending != 50 || running.AckWait == 45*time.Second {
		t.Fatalf("the server applied the edit it should refuse: maxAckPending %d ackWait %s (refusal %s)", running.MaxAckPending, running.AckWait, refusal.Message)
	}

	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "billing-binding"}}
	if err := k8s.Delete(ctx, secret); err != nil {
		t.Fatal(err)
	}
	eventually(t, wait, func() error {
		var s corev1.Secret
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(secret), &s); err != nil {
			return fmt.Errorf("binding Secret not restored during the refused edit: %w", err)
		}
		b, err := binding.Decode(s.Data)
		if err != nil {
			return err
		}
		if b.AckWait != running.AckWait || b.Durable != "billing" {
			return fmt.Errorf("restored binding says durable %s ackWait %s; the durable runs with %s", b.Durable, b.AckWait, running.AckWait)
		}
		return nil
	})
}

// A durable that acknowledges otherwise than the Consumer's semantic needs
// (made so out of band, or by a Topic flipped before admission refused
// such flips) is never called Ready, and its binding is not rewritten into
// one that contradicts it.
func TestDurableWithTheWrongAckPolicyIsNotReady(t *testing.T) {
	ns := namespace(t)
	topic := newTopic(ns, "metrics", hubflowv1.AtMostOnce)
	cons := newConsumer(ns, "dashboard", "metrics")
	create(t, topic, cons)
	ready(t, topic)
	ready(t, cons)
	stream := semantic.StreamName(ns, "metrics")
	before := bindingOf(t, cons, "dashboard-binding")
	if before.Ack != binding.AckNone {
		t.Fatalf("AtMostOnce binding says ack %q", before.Ack)
	}

	c, err := js.Consumer(ctx, stream, "dashboard")
	if err != nil {
		t.Fatal(err)
	}
	cfg := c.CachedInfo().Config
	cfg.AckPolicy = jetstream.AckExplicitPolicy
	// The swap is not seen while it happens, or hubflow would recreate the
	// durable in between; a touch of the Consumer then shows it.
	t.Run("swap the durable unseen", func(t *testing.T) {
		controllers.PauseObserver(t)
		controllers.DropAdvisories(t, hub.ConsumerDeleted, hub.ConsumerCall)
		if err := js.DeleteConsumer(ctx, stream, "dashboard"); err != nil {
			t.Fatal(err)
		}
		if _, err := js.CreateConsumer(ctx, stream, cfg); err != nil {
			t.Fatal(err)
		}
	})
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(cons), cons); err != nil {
			return err
		}
		metav1.SetMetaDataAnnotation(&cons.ObjectMeta, "test/touched", "1")
		return k8s.Update(ctx, cons)
	}); err != nil {
		t.Fatal(err)
	}
	cond := condition(t, cons, hubflowv1.ConditionReady, metav1.ConditionFalse, controllers.ReasonImmutableChange)
	if !containsText(cond.Message, "ackPolicy") {
		t.Errorf("the refusal does not name the ack policy: %s", cond.Message)
	}
	after := bindingOf(t, cons, "dashboard-binding")
	if after.Ack != before.Ack {
		t.Errorf("binding rewritten to ack %q for a durable hubflow cannot run the semantic on", after.Ack)
	}
}
