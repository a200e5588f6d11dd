package controllers_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/controllers"
	"github.com/hubflow/hubflow/internal/semantic"
)

// gone waits until obj no longer exists (its finalizer, if any, is dropped).
func gone(t *testing.T, obj client.Object) {
	t.Helper()
	eventually(t, wait, func() error {
		err := k8s.Get(ctx, client.ObjectKeyFromObject(obj), obj)
		if err == nil {
			return fmt.Errorf("%s still exists, finalizers %v", obj.GetName(), obj.GetFinalizers())
		}
		return client.IgnoreNotFound(err)
	})
}

// Deleting a Consumer refused because its durable name is taken leaves the
// other Consumer's durable, and its acknowledgement state, alone.
func TestDeletingARefusedConsumerKeepsTheOwnersDurable(t *testing.T) {
	ns := namespace(t)
	create(t, newTopic(ns, "orders", hubflowv1.AtLeastOnce))
	owner := newConsumer(ns, "billing", "orders")
	owner.Spec.DurableName = "shared"
	create(t, owner)
	ready(t, owner)
	clash := newConsumer(ns, "audit", "orders")
	clash.Spec.DurableName = "shared"
	create(t, clash)
	condition(t, clash, hubflowv1.ConditionReady, metav1.ConditionFalse, controllers.ReasonOwnedElsewhere)
	if clash.Status.DurableName != "" || clash.Status.StreamName != "" {
		t.Errorf("a refused Consumer reports durable %q on stream %q it does not own", clash.Status.DurableName, clash.Status.StreamName)
	}

	if err := k8s.Delete(ctx, clash); err != nil {
		t.Fatal(err)
	}
	gone(t, clash)
	// The durable is collected after the Consumer is gone: wait until the
	// collector has looked at it and said why it left it.
	eventFor(t, clash, "DurableLeftAlone")
	d, err := js.Consumer(ctx, semantic.StreamName(ns, "orders"), "shared")
	if err != nil {
		t.Fatalf("the owner's durable was deleted with the Consumer that clashed with it: %v", err)
	}
	if got := d.CachedInfo().Config.Metadata[semantic.OwnerKey]; got != semantic.Owner(ns, "billing") {
		t.Errorf("durable owner is %q", got)
	}
}

// deletionPolicy Delete deletes only a stream the Topic owns.
func TestDeletePolicyLeavesAForeignStream(t *testing.T) {
	ns := namespace(t)
	name := semantic.StreamName(ns, "ledger")
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{ns + ".theirs"},
		Metadata: map[string]string{semantic.OwnerKey: "elsewhere/ledger"}}); err != nil {
		t.Fatal(err)
	}
	topic := newTopic(ns, "ledger", hubflowv1.AtLeastOnce)
	topic.Spec.DeletionPolicy = hubflowv1.DeleteOnDelete
	create(t, topic)
	condition(t, topic, hubflowv1.ConditionReady, metav1.ConditionFalse, controllers.ReasonOwnedElsewhere)
	if err := k8s.Delete(ctx, topic); err != nil {
		t.Fatal(err)
	}
	gone(t, topic)
	if _, err := js.Stream(ctx, name); err != nil {
		t.Fatalf("a stream owned elsewhere was deleted with the Topic: %v", err)
	}
}

// A stream or durable that exists without hubflow's owner metadata is left
// as it is: not rewritten, not adopted, unless the spec opts in.
func TestUnownedObjectsAreNotAdoptedSilently(t *testing.T) {
	ns := namespace(t)
	name := semantic.StreamName(ns, "legacy")
	theirs := []string{ns + ".legacy.in", ns + ".legacy.out"}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: theirs, MaxMsgs: 42}); err != nil {
		t.Fatal(err)
	}
	topic := newTopic(ns, "legacy", hubflowv1.AtLeastOnce)
	create(t, topic)
	c := condition(t, topic, hubflowv1.ConditionReady, metav1.ConditionFalse, controllers.ReasonNotOwned)
	if !containsText(c.Message, "adoptExisting") {
		t.Errorf("message %q does not say how to opt in", c.Message)
	}
	s, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if cfg := s.CachedInfo().Config; !slices.Equal(cfg.Subjects, theirs) || cfg.MaxMsgs != 42 || cfg.Metadata[semantic.OwnerKey] != "" {
		t.Fatalf("an unowned stream was rewritten: subjects %v, maxMsgs %d, metadata %v", cfg.Subjects, cfg.MaxMsgs, cfg.Metadata)
	}
	if topic.Status.StreamName != "" {
		t.Errorf("status.streamName %q names a stream the Topic does not own", topic.Status.StreamName)
	}

	// Opting in adopts it, says so, and applies the spec.
	topic.Spec.AdoptExisting = true
	if err := k8s.Update(ctx, topic); err != nil {
		t.Fatal(err)
	}
	ready(t, topic)
	condition(t, topic, controllers.ConditionAdopted, metav1.ConditionTrue, controllers.ReasonAdopted)
	eventFor(t, topic, controllers.ReasonAdopted)
	s, err = js.Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().Config.Metadata[semantic.OwnerKey]; got != semantic.Owner(ns, "legacy") {
		t.Errorf("adopted stream's owner is %q", got)
	}

	// The same for a durable someone made by hand on the (now owned) stream.
	if _, err := js.CreateConsumer(ctx, name, jetstream.ConsumerConfig{Durable: "reader", AckPolicy: jetstream.AckExplicitPolicy, MaxDeliver: 7}); err != nil {
		t.Fatal(err)
	}
	cons := newConsumer(ns, "reader", "legacy")
	create(t, cons)
	condition(t, cons, hubflowv1.ConditionReady, metav1.ConditionFalse, controllers.ReasonNotOwned)
	d, err := js.Consumer(ctx, name, "reader")
	if err != nil || d.CachedInfo().Config.MaxDeliver != 7 {
		t.Fatalf("an unowned durable was rewritten: %v %+v", err, d)
	}
	if err := k8s.Delete(ctx, cons); err != nil {
		t.Fatal(err)
	}
	gone(t, cons)
	eventFor(t, cons, "DurableLeftAlone")
	if _, err := js.Consumer(ctx, name, "reader"); err != nil {
		t.Fatalf("an unowned durable was deleted with the Consumer: %v", err)
	}
}

// An object created by the previous release carries the owner value
// "<namespace>/<name>" and no cluster: it is still this Topic's, and the
// next update stamps the cluster on it.
func TestPreviousReleasesOwnerValueStillCounts(t *testing.T) {
	ns := namespace(t)
	name := semantic.StreamName(ns, "old")
	topic := newTopic(ns, "old", hubflowv1.AtLeastOnce)
	desired := semantic.Stream(topic)
	desired.Metadata = map[string]string{semantic.OwnerKey: ns + "/old"}
	if _, err := js.CreateStream(ctx, desired); err != nil {
		t.Fatal(err)
	}
	create(t, topic)
	ready(t, topic)
	eventually(t, wait, func() error {
		s, err := js.Stream(ctx, name)
		if err != nil {
			return err
		}
		if got := s.CachedInfo().Config.Metadata[semantic.ClusterKey]; got != testCluster {
			return fmt.Errorf("stream's cluster is %q, want %q", got, testCluster)
		}
		return nil
	})

	// A stream of the same Topic in another cluster is someone else's.
	other := semantic.StreamName(ns, "twin")
	twin := newTopic(ns, "twin", hubflowv1.AtLeastOnce)
	cfg := semantic.Stream(twin)
	cfg.Metadata[semantic.ClusterKey] = "other-cluster"
	if _, err := js.CreateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	twin.Spec.DeletionPolicy = hubflowv1.DeleteOnDelete
	create(t, twin)
	condition(t, twin, hubflowv1.ConditionReady, metav1.ConditionFalse, controllers.ReasonOwnedElsewhere)
	if err := k8s.Delete(ctx, twin); err != nil {
		t.Fatal(err)
	}
	gone(t, twin)
	if _, err := js.Stream(ctx, other); errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatal("another cluster's stream was deleted")
	}
}
