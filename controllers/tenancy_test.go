package controllers_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/internal/semantic"
)

// A Topic cannot capture another namespace's subjects: a new one is
// refused before any stream exists, so the other namespace's own Topic
// still gets its stream; an edit of a serving one is refused while its
// stream keeps serving.
func TestTopicCannotTakeAnotherNamespacesSubjects(t *testing.T) {
	attacker, victim := namespace(t), namespace(t)
	squatter := newTopic(attacker, "squat", hubflowv1.AtLeastOnce)
	squatter.Spec.Subjects = []string{victim + ".orders", victim + ".orders.>"}
	create(t, squatter)
	refusal := condition(t, squatter, hubflowv1.ConditionReady, metav1.ConditionFalse, semantic.ReasonSubjectOutsideNamespace)
	if !containsText(refusal.Message, "spec.subjects[0]") || !containsText(refusal.Message, victim+".orders") {
		t.Errorf("the refusal names neither the field nor the subject: %s", refusal.Message)
	}
	if _, err := js.Stream(ctx, semantic.StreamName(attacker, "squat")); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("a stream exists for the refused Topic: %v", err)
	}

	orders := newTopic(victim, "orders", hubflowv1.AtLeastOnce)
	create(t, orders)
	ready(t, orders)

	own := newTopic(attacker, "events", hubflowv1.AtLeastOnce)
	create(t, own)
	ready(t, own)
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(own), own); err != nil {
			return err
		}
		own.Spec.Subjects = []string{attacker + ".events", victim + ".payments"}
		return k8s.Update(ctx, own)
	}); err != nil {
		t.Fatal(err)
	}
	condition(t, own, hubflowv1.ConditionSynced, metav1.ConditionFalse, semantic.ReasonSubjectOutsideNamespace)
	condition(t, own, hubflowv1.ConditionReady, metav1.ConditionTrue, "")
	s, err := js.Stream(ctx, semantic.StreamName(attacker, "events"))
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().Config.Subjects; slices.Contains(got, victim+".payments") {
		t.Errorf("the refused edit reached the stream: subjects %v", got)
	}
}

// On a hub whose namespaces share one account, a Topic says so: isolation
// between namespaces is off (docs/tenancy.md).
func TestTopicSaysIsolationIsOffOnASharedAccount(t *testing.T) {
	ns := namespace(t)
	topic := newTopic(ns, "events", hubflowv1.AtLeastOnce)
	create(t, topic)
	ready(t, topic)
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(topic), topic); err != nil {
		t.Fatal(err)
	}
	if topic.Status.Isolation != hubflowv1.IsolationSharedAccount || topic.Status.Account != "" {
		t.Errorf("status: isolation %q, account %q; want %s and no account on a hub without auth", topic.Status.Isolation, topic.Status.Account, hubflowv1.IsolationSharedAccount)
	}
}
