package controllers_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/internal/semantic"
)

const hubflowFinalizer = "hubflow.io/jetstream"

// durableGone waits until the durable no longer exists.
func durableGone(t *testing.T, stream, durable string) {
	t.Helper()
	eventually(t, wait, func() error {
		_, err := js.Consumer(ctx, stream, durable)
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			return nil
		}
		return fmt.Errorf("durable %s still there (%v)", durable, err)
	})
}

// A Consumer carries no finalizer, and deleting it still deletes its
// durable, once it is gone.
func TestDeletingAConsumerDeletesItsDurableWithoutAFinalizer(t *testing.T) {
	ns := namespace(t)
	create(t, newTopic(ns, "orders", hubflowv1.AtLeastOnce))
	cons := newConsumer(ns, "billing", "orders")
	create(t, cons)
	ready(t, cons)
	if len(cons.Finalizers) > 0 {
		t.Errorf("a Consumer carries finalizers %v", cons.Finalizers)
	}
	stream := semantic.StreamName(ns, "orders")
	if _, err := js.Consumer(ctx, stream, "billing"); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Delete(ctx, cons); err != nil {
		t.Fatal(err)
	}
	gone(t, cons)
	durableGone(t, stream, "billing")
}

// A Consumer created by an earlier release carries the finalizer: it is
// taken off, and the Consumer's deletion still deletes the durable.
func TestAnEarlierReleasesFinalizerIsTakenOff(t *testing.T) {
	ns := namespace(t)
	create(t, newTopic(ns, "orders", hubflowv1.AtLeastOnce))
	cons := newConsumer(ns, "billing", "orders")
	cons.Finalizers = []string{hubflowFinalizer}
	create(t, cons)
	ready(t, cons)
	eventually(t, wait, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(cons), cons); err != nil {
			return err
		}
		if slices.Contains(cons.Finalizers, hubflowFinalizer) {
			return fmt.Errorf("finalizers %v", cons.Finalizers)
		}
		return nil
	})
	if err := k8s.Delete(ctx, cons); err != nil {
		t.Fatal(err)
	}
	gone(t, cons)
	durableGone(t, semantic.StreamName(ns, "orders"), "billing")
}

// The observer's sweep collects a durable hubflow made for a Consumer that
// is gone (its delete event missed, as while the manager was down), and
// leaves every other: one of another cluster, one of an earlier release
// without a cluster, one made by hand, and those of existing Consumers.
func TestTheSweepCollectsOnlyDurablesOfGoneConsumers(t *testing.T) {
	ns := namespace(t)
	topic := newTopic(ns, "orders", hubflowv1.AtLeastOnce)
	create(t, topic)
	live := newConsumer(ns, "live", "orders")
	create(t, live)
	ready(t, live)
	stream := semantic.StreamName(ns, "orders")

	ghost := semantic.Owner(ns, "ghost")
	durables := map[string]map[string]string{
		"orphan":  {semantic.OwnerKey: ghost, semantic.ClusterKey: testCluster},
		"foreign": {semantic.OwnerKey: ghost, semantic.ClusterKey: "other-cluster"},
		"legacy":  {semantic.OwnerKey: ghost},
		"by-hand": nil,
		// A durable of the existing Consumer under a name its spec does
		// not give is not in use: it goes too.
		"stale": {semantic.OwnerKey: semantic.Owner(ns, "live"), semantic.ClusterKey: testCluster},
	}
	for name, md := range durables {
		if _, err := js.CreateConsumer(ctx, stream, jetstream.ConsumerConfig{Durable: name, AckPolicy: jetstream.AckExplicitPolicy, Metadata: md}); err != nil {
			t.Fatal(err)
		}
	}
	durableGone(t, stream, "orphan")
	durableGone(t, stream, "stale")
	for _, name := range []string{"foreign", "legacy", "by-hand", "live"} {
		if _, err := js.Consumer(ctx, stream, name); err != nil {
			t.Errorf("durable %s was collected: %v", name, err)
		}
	}
}
