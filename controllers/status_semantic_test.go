package controllers_test

import (
	"errors"
	"fmt"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/controllers"
	"github.com/hubflow/hubflow/internal/semantic"
)

// kubectl's SEMANTIC and EFFECTIVE columns are never blank: a failing
// object shows what it asks for, and that nothing is delivered.
func TestFailingObjectsStillShowTheirSemantic(t *testing.T) {
	ns := namespace(t)
	topic := newTopic(ns, "ledger", hubflowv1.AtLeastOnce)
	orphan := newConsumer(ns, "orphan", "missing")
	eager := newConsumer(ns, "eager", "ledger")
	eager.Spec.Semantic = semPtr(hubflowv1.ExactlyOnce)
	lone := newProducer(ns, "lone", "missing")
	declared := newProducer(ns, "declared", "missing")
	declared.Spec.Semantic = semPtr(hubflowv1.AtMostOnce)
	create(t, topic, orphan, eager, lone, declared)

	condition(t, orphan, hubflowv1.ConditionReady, metav1.ConditionFalse, controllers.ReasonTopicNotFound)
	condition(t, eager, hubflowv1.ConditionReady, metav1.ConditionFalse, semantic.ReasonSemanticStrongerThanTopic)
	condition(t, lone, hubflowv1.ConditionReady, metav1.ConditionFalse, controllers.ReasonTopicNotFound)
	condition(t, declared, hubflowv1.ConditionReady, metav1.ConditionFalse, controllers.ReasonTopicNotFound)
	for _, tc := range []struct {
		name            string
		got, want       hubflowv1.StatusSemantic
		gotEff, wantEff hubflowv1.StatusSemantic
		checkEff        bool
	}{
		{"consumer without a semantic or a Topic", orphan.Status.Semantic, hubflowv1.SemanticNone, orphan.Status.EffectiveSemantic, hubflowv1.SemanticNone, true},
		{"consumer asking more than its Topic", eager.Status.Semantic, hubflowv1.StatusSemantic(hubflowv1.ExactlyOnce), eager.Status.EffectiveSemantic, hubflowv1.SemanticNone, true},
		{"producer without a semantic or a Topic", lone.Status.Semantic, hubflowv1.SemanticNone, "", "", false},
		{"producer declaring a semantic", declared.Status.Semantic, hubflowv1.StatusSemantic(hubflowv1.AtMostOnce), "", "", false},
	} {
		if tc.got != tc.want || (tc.checkEff && tc.gotEff != tc.wantEff) {
			t.Errorf("%s: semantic %q effective %q, want %q and %q", tc.name, tc.got, tc.gotEff, tc.want, tc.wantEff)
		}
	}
}

// Once a Topic and its stream are deleted, no status still names the
// stream or the durable, and nothing is said to be delivered.
func TestStatusForgetsWhatIsGone(t *testing.T) {
	ns := namespace(t)
	topic := newTopic(ns, "ledger", hubflowv1.AtLeastOnce)
	topic.Spec.DeletionPolicy = hubflowv1.DeleteOnDelete
	reader := newConsumer(ns, "reader", "ledger")
	writer := newProducer(ns, "writer", "ledger")
	create(t, topic, reader, writer)
	ready(t, topic)
	ready(t, reader)
	ready(t, writer)
	stream := semantic.StreamName(ns, "ledger")
	if reader.Status.StreamName != stream || reader.Status.DurableName == "" || writer.Status.StreamName != stream {
		t.Fatalf("before: consumer names %q/%q, producer %q", reader.Status.StreamName, reader.Status.DurableName, writer.Status.StreamName)
	}

	if err := k8s.Delete(ctx, topic); err != nil {
		t.Fatal(err)
	}
	condition(t, reader, hubflowv1.ConditionReady, metav1.ConditionFalse, controllers.ReasonTopicNotFound)
	condition(t, writer, hubflowv1.ConditionReady, metav1.ConditionFalse, controllers.ReasonTopicNotFound)
	if _, err := js.Stream(ctx, stream); err == nil {
		t.Fatalf("stream %s still exists after its Topic was deleted with deletionPolicy Delete", stream)
	}
	eventually(t, wait, func() error {
		for _, o := range []client.Object{reader, writer} {
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(o), o); err != nil {
				return err
			}
		}
		var errs []error
		if reader.Status.StreamName != "" || reader.Status.DurableName != "" || reader.Status.Lag != nil {
			errs = append(errs, fmt.Errorf("consumer still names stream %q durable %q (lag %+v)", reader.Status.StreamName, reader.Status.DurableName, reader.Status.Lag))
		}
		if reader.Status.EffectiveSemantic != hubflowv1.SemanticNone {
			errs = append(errs, fmt.Errorf("consumer says effective %q with no Topic", reader.Status.EffectiveSemantic))
		}
		if writer.Status.StreamName != "" || writer.Status.Subjects != nil {
			errs = append(errs, fmt.Errorf("producer still names stream %q subjects %v", writer.Status.StreamName, writer.Status.Subjects))
		}
		return errors.Join(errs...)
	})

	// Applied again, the Topic's new stream serves the registrants written
	// before: they wait for it and come back Ready, the durable made anew.
	again := newTopic(ns, "ledger", hubflowv1.AtLeastOnce)
	again.Spec.DeletionPolicy = hubflowv1.DeleteOnDelete
	create(t, again)
	ready(t, again)
	ready(t, reader)
	ready(t, writer)
	if reader.Status.StreamName != stream || reader.Status.DurableName == "" || writer.Status.StreamName != stream {
		t.Errorf("after the Topic is applied again: consumer names %q/%q, producer %q", reader.Status.StreamName, reader.Status.DurableName, writer.Status.StreamName)
	}
	if _, err := js.Consumer(ctx, stream, reader.Status.DurableName); err != nil {
		t.Errorf("durable %s on the new stream: %v", reader.Status.DurableName, err)
	}
}
