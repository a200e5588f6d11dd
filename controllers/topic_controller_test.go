package controllers_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/controllers"
	"github.com/hubflow/hubflow/internal/semantic"
)

// Every semantic becomes the stream, durable and client policy of the
// contract, read back from JetStream itself.
func TestEachSemanticCompilesToTheContract(t *testing.T) {
	tests := []struct {
		sem         hubflowv1.DeliverySemantic
		storage     jetstream.StorageType
		discard     jetstream.DiscardPolicy
		duplicates  time.Duration
		ackPolicy   jetstream.AckPolicy
		undelivered string
	}{
		{hubflowv1.AtMostOnce, jetstream.MemoryStorage, jetstream.DiscardOld, 0, jetstream.AckNonePolicy, "never redelivered"},
		{hubflowv1.AtLeastOnce, jetstream.FileStorage, jetstream.DiscardNew, 0, jetstream.AckExplicitPolicy, "nothing is dropped"},
		{hubflowv1.ExactlyOnce, jetstream.FileStorage, jetstream.DiscardNew, 2 * time.Minute, jetstream.AckExplicitPolicy, "nothing is dropped"},
	}
	for _, tc := range tests {
		t.Run(string(tc.sem), func(t *testing.T) {
			ns := namespace(t)
			topic := newTopic(ns, "flow", tc.sem)
			topic.Spec.Retention = &hubflowv1.RetentionLimits{MaxBytes: ptrTo(resource.MustParse("64Mi"))}
			if tc.sem == hubflowv1.AtMostOnce {
				topic.Spec.Storage = hubflowv1.MemoryStorage
			}
			cons, prod := newConsumer(ns, "reader", "flow"), newProducer(ns, "writer", "flow")
			create(t, topic, cons, prod)
			ready(t, topic)
			ready(t, cons)
			ready(t, prod)

			stream, err := js.Stream(ctx, semantic.StreamName(ns, "flow"))
			if err != nil {
				t.Fatal(err)
			}
			cfg := stream.CachedInfo().Config
			if cfg.Storage != tc.storage || cfg.Discard != tc.discard || cfg.Retention != jetstream.LimitsPolicy || cfg.MaxBytes != 64<<20 {
				t.Errorf("stream: storage %s discard %s retention %s maxBytes %d", cfg.Storage, cfg.Discard, cfg.Retention, cfg.MaxBytes)
			}
			if tc.duplicates != 0 && cfg.Duplicates != tc.duplicates {
				t.Errorf("duplicate window %s, want %s", cfg.Duplicates, tc.duplicates)
			}
			durable, err := js.Consumer(ctx, cfg.Name, "reader")
			if err != nil {
				t.Fatal(err)
			}
			dc := durable.CachedInfo().Config
			if dc.AckPolicy != tc.ackPolicy || dc.MaxDeliver != -1 {
				t.Errorf("consumer: ack %s maxDeliver %d", dc.AckPolicy, dc.MaxDeliver)
			}
			if tc.ackPolicy == jetstream.AckExplicitPolicy && (dc.AckWait != 30*time.Second || len(dc.BackOff) != 4) {
				t.Errorf("consumer: ackWait %s backoff %v, want 30s and a doubling backoff", dc.AckWait, dc.BackOff)
			}
			if cons.Status.Semantic != hubflowv1.StatusSemantic(tc.sem) || cons.Status.StreamName != cfg.Name || cons.Status.DurableName != "reader" {
				t.Errorf("consumer status %+v", cons.Status)
			}
			if !containsText(cons.Status.Undeliverable, tc.undelivered) {
				t.Errorf("undeliverable %q, want it to say %q", cons.Status.Undeliverable, tc.undelivered)
			}
			if prod.Status.Semantic != hubflowv1.StatusSemantic(tc.sem) || len(prod.Status.Subjects) != 2 {
				t.Errorf("producer status %+v", prod.Status)
			}
			eventually(t, wait, func() error {
				if err := k8s.Get(ctx, client.ObjectKeyFromObject(topic), topic); err != nil {
					return err
				}
				s := topic.Status
				if s.Producers == nil || s.Consumers == nil || s.Producers.Count != 1 || s.Consumers.Count != 1 ||
					s.Consumers.Names[0] != "reader" || s.EffectiveSemantic != hubflowv1.StatusSemantic(tc.sem) {
					return fmt.Errorf("registry view %+v %+v %s", s.Producers, s.Consumers, s.EffectiveSemantic)
				}
				return nil
			})
		})
	}
}

// A producer that sends no message ids weakens what an ExactlyOnce
// consumer gets, and the Topic and Consumer both say so.
func TestEffectiveSemanticFollowsTheWeakestProducer(t *testing.T) {
	ns := namespace(t)
	topic := newTopic(ns, "payments", hubflowv1.ExactlyOnce)
	ledger := newConsumer(ns, "ledger", "payments")
	checkout := newProducer(ns, "checkout", "payments")
	create(t, topic, ledger, checkout)
	ready(t, ledger)
	effective := func(want hubflowv1.DeliverySemantic) {
		t.Helper()
		eventually(t, wait, func() error {
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(ledger), ledger); err != nil {
				return err
			}
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(topic), topic); err != nil {
				return err
			}
			if ledger.Status.EffectiveSemantic != hubflowv1.StatusSemantic(want) || topic.Status.EffectiveSemantic != hubflowv1.StatusSemantic(want) {
				return fmt.Errorf("consumer %s, topic %s, want %s", ledger.Status.EffectiveSemantic, topic.Status.EffectiveSemantic, want)
			}
			return nil
		})
	}
	effective(hubflowv1.ExactlyOnce)

	legacy := newProducer(ns, "legacy-batch", "payments")
	legacy.Spec.Semantic = semPtr(hubflowv1.AtLeastOnce)
	create(t, legacy)
	effective(hubflowv1.AtLeastOnce)

	if err := k8s.Delete(ctx, legacy); err != nil {
		t.Fatal(err)
	}
	effective(hubflowv1.ExactlyOnce)
}

// A stream that cannot take the declared config in place is reported, and
// neither deleted nor emptied.
func TestImmutableDifferenceIsReportedAndDataKept(t *testing.T) {
	ns := namespace(t)
	name := semantic.StreamName(ns, "orders")
	// The Topic's stream exists in memory (an earlier install of this Topic,
	// since edited by hand) and holds messages.
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{ns + ".orders", ns + ".orders.>"}, Storage: jetstream.MemoryStorage,
		Metadata: map[string]string{semantic.OwnerKey: semantic.Owner(ns, "orders")}}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := js.Publish(ctx, ns+".orders", fmt.Appendf(nil, "order %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	topic := newTopic(ns, "orders", hubflowv1.AtLeastOnce)
	create(t, topic)
	c := condition(t, topic, hubflowv1.ConditionSynced, metav1.ConditionFalse, controllers.ReasonImmutableChange)
	if !containsText(c.Message, "storage") {
		t.Errorf("message %q does not name the field", c.Message)
	}
	condition(t, topic, hubflowv1.ConditionReady, metav1.ConditionTrue, "")

	info, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if st := info.CachedInfo(); st.State.Msgs != 3 || st.Config.Storage != jetstream.MemoryStorage {
		t.Errorf("stream touched: %d messages, storage %s", st.State.Msgs, st.Config.Storage)
	}
}

// A stream deleted behind hubflow's back comes back within seconds through
// the deletion advisory, with a warning that its messages are gone; its
// durable consumers come back too.
func TestOutOfBandDeletionIsHealedAndReported(t *testing.T) {
	ns := namespace(t)
	topic := newTopic(ns, "alerts", hubflowv1.AtLeastOnce)
	cons := newConsumer(ns, "pager", "alerts")
	create(t, topic, cons)
	ready(t, topic)
	ready(t, cons)
	name := semantic.StreamName(ns, "alerts")
	if _, err := js.Publish(ctx, ns+".alerts", []byte("disk full")); err != nil {
		t.Fatal(err)
	}

	if err := js.DeleteStream(ctx, name); err != nil {
		t.Fatal(err)
	}
	eventually(t, wait, func() error {
		_, err := js.Stream(ctx, name)
		return err
	})
	condition(t, topic, controllers.ConditionStreamRecreated, metav1.ConditionTrue, controllers.ReasonStreamRecreated)
	e := eventFor(t, topic, controllers.ReasonStreamRecreated)
	if e.Type != "Warning" {
		t.Errorf("event type %s, want Warning", e.Type)
	}
	eventually(t, wait, func() error {
		_, err := js.Consumer(ctx, name, "pager")
		return err
	})
	ready(t, cons)
}

// An out-of-band edit of a stream is undone through the update advisory.
func TestOutOfBandStreamEditIsUndone(t *testing.T) {
	ns := namespace(t)
	topic := newTopic(ns, "metrics", hubflowv1.AtLeastOnce)
	topic.Spec.Retention = &hubflowv1.RetentionLimits{MaxAge: &metav1.Duration{Duration: time.Hour}}
	create(t, topic)
	ready(t, topic)
	name := semantic.StreamName(ns, "metrics")
	s, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	edited := s.CachedInfo().Config
	edited.MaxAge = 30 * time.Minute
	if _, err := js.UpdateStream(ctx, edited); err != nil {
		t.Fatal(err)
	}
	eventually(t, wait, func() error {
		s, err := js.Stream(ctx, name)
		if err != nil {
			return err
		}
		if got := s.CachedInfo().Config.MaxAge; got != time.Hour {
			return fmt.Errorf("maxAge still %s", got)
		}
		return nil
	})
	eventFor(t, topic, "StreamUpdated")
}

// Retain keeps the stream and its messages when the Topic goes; Delete
// removes them.
func TestDeletionPolicy(t *testing.T) {
	for _, policy := range []hubflowv1.DeletionPolicy{hubflowv1.RetainOnDelete, hubflowv1.DeleteOnDelete} {
		t.Run(string(policy), func(t *testing.T) {
			ns := namespace(t)
			topic := newTopic(ns, "audit", hubflowv1.AtLeastOnce)
			topic.Spec.DeletionPolicy = policy
			create(t, topic)
			ready(t, topic)
			// A finalizer only where deletion must act.
			if has := slices.Contains(topic.Finalizers, "hubflow.io/jetstream"); has != (policy == hubflowv1.DeleteOnDelete) {
				t.Errorf("deletionPolicy %s: finalizers %v", policy, topic.Finalizers)
			}
			name := semantic.StreamName(ns, "audit")
			if _, err := js.Publish(ctx, ns+".audit", []byte("login")); err != nil {
				t.Fatal(err)
			}
			if err := k8s.Delete(ctx, topic); err != nil {
				t.Fatal(err)
			}
			eventually(t, wait, func() error {
				err := k8s.Get(ctx, client.ObjectKeyFromObject(topic), topic)
				if err == nil {
					return errors.New("topic still exists")
				}
				return client.IgnoreNotFound(err)
			})
			s, err := js.Stream(ctx, name)
			switch policy {
			case hubflowv1.RetainOnDelete:
				if err != nil || s.CachedInfo().State.Msgs != 1 {
					t.Fatalf("retained stream: %v", err)
				}
			case hubflowv1.DeleteOnDelete:
				if !errors.Is(err, jetstream.ErrStreamNotFound) {
					t.Fatalf("stream should be gone, got %v", err)
				}
			}
		})
	}
}

// Switching a Topic's deletion policy adds or removes its finalizer.
func TestDeletionPolicyChangeMovesTheFinalizer(t *testing.T) {
	ns := namespace(t)
	topic := newTopic(ns, "audit", hubflowv1.AtLeastOnce)
	create(t, topic)
	ready(t, topic)
	finalizers := func(want bool) {
		t.Helper()
		eventually(t, wait, func() error {
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(topic), topic); err != nil {
				return err
			}
			if has := slices.Contains(topic.Finalizers, "hubflow.io/jetstream"); has != want {
				return fmt.Errorf("deletionPolicy %q: finalizers %v", topic.Spec.DeletionPolicy, topic.Finalizers)
			}
			return nil
		})
	}
	finalizers(false)
	edit(t, topic, func() { topic.Spec.DeletionPolicy = hubflowv1.DeleteOnDelete })
	finalizers(true)
	edit(t, topic, func() { topic.Spec.DeletionPolicy = hubflowv1.RetainOnDelete })
	finalizers(false)
}

func containsText(s, sub string) bool { return strings.Contains(s, sub) }

func ptrTo[T any](v T) *T { return &v }
