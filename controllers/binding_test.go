package controllers_test

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/controllers"
	"github.com/hubflow/hubflow/pkg/binding"
)

// On a hub without auth every Producer and Consumer still gets its binding,
// with everything but credentials, and says so without calling it an error.
func TestBindingsWithoutAuth(t *testing.T) {
	ns := namespace(t)
	topic := newTopic(ns, "payments", hubflowv1.ExactlyOnce)
	prod := newProducer(ns, "checkout", "payments")
	cons := newConsumer(ns, "ledger.v2", "payments")
	cons.Spec.FilterSubjects = []string{ns + ".payments.>"}
	cons.Spec.AckWait = &metav1.Duration{Duration: 10 * time.Second}
	create(t, topic, prod, cons)
	ready(t, prod)
	ready(t, cons)

	for _, obj := range []client.Object{prod, cons} {
		c := condition(t, obj, hubflowv1.ConditionCredentialsIssued, metav1.ConditionFalse, controllers.ReasonHubWithoutAuth)
		if !containsText(c.Message, obj.GetName()+"-binding") {
			t.Errorf("%s: the condition does not name the Secret: %s", obj.GetName(), c.Message)
		}
	}
	if prod.Status.Binding == nil || prod.Status.Binding.Name != "checkout-binding" {
		t.Errorf("producer status.binding = %+v", prod.Status.Binding)
	}
	if cons.Status.Binding == nil || cons.Status.Binding.Name != "ledger.v2-binding" {
		t.Errorf("consumer status.binding = %+v", cons.Status.Binding)
	}

	got := bindingOf(t, prod, "checkout-binding")
	want := binding.Binding{
		Role: binding.RoleProducer, URL: hubNATS.URL(), Stream: ns + "_payments",
		Subjects: []string{ns + ".payments", ns + ".payments.>"}, Semantic: "ExactlyOnce",
		Inbox: "_INBOX_" + ns + "_producer_checkout", WaitForAck: true, MessageID: true,
		AckTimeout: 5 * time.Second, Retries: 5, RetryWait: 500 * time.Millisecond, DuplicateWindow: 2 * time.Minute,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("producer binding\n got %+v\nwant %+v", got, want)
	}
	got = bindingOf(t, cons, "ledger.v2-binding")
	want = binding.Binding{
		Role: binding.RoleConsumer, URL: hubNATS.URL(), Stream: ns + "_payments",
		Subjects: []string{ns + ".payments.>"}, Durable: "ledger_v2", Semantic: "ExactlyOnce",
		Inbox: "_INBOX_" + ns + "_consumer_ledger_v2", Ack: binding.AckDoubleAck, AckWait: 10 * time.Second,
		RedeliveryDelays: []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second},
		IdempotencyKey:   true,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("consumer binding\n got %+v\nwant %+v", got, want)
	}
}

// bindingOf reads a binding Secret, checks its envelope (type, label,
// controller owner, no credentials) and decodes it.
func bindingOf(t *testing.T, owner client.Object, name string) binding.Binding {
	t.Helper()
	var s corev1.Secret
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: owner.GetNamespace(), Name: name}, &s); err != nil {
		t.Fatal(err)
	}
	if s.Type != binding.SecretType {
		t.Errorf("%s: type %s", name, s.Type)
	}
	if s.Labels[controllers.BindingLabel] != "true" {
		t.Errorf("%s: labels %v", name, s.Labels)
	}
	ref := metav1.GetControllerOf(&s)
	if ref == nil || ref.UID != owner.GetUID() || ref.BlockOwnerDeletion == nil || !*ref.BlockOwnerDeletion {
		t.Errorf("%s: controller %+v, want %s with blockOwnerDeletion", name, ref, owner.GetUID())
	}
	if _, ok := s.Data[binding.KeyCreds]; ok {
		t.Errorf("%s holds credentials on a hub without auth", name)
	}
	b, err := binding.Decode(s.Data)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return b
}

// A Secret hubflow did not write is never overwritten: the object reports
// the conflict until it names another Secret.
func TestBindingNeverOverwritesAnotherSecret(t *testing.T) {
	ns := namespace(t)
	mine := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "audit-binding"},
		Data:       map[string][]byte{"password": []byte("hunter2")},
	}
	create(t, mine, newTopic(ns, "events", hubflowv1.AtLeastOnce))
	prod := newProducer(ns, "audit", "events")
	create(t, prod)
	c := condition(t, prod, hubflowv1.ConditionReady, metav1.ConditionFalse, controllers.ReasonBindingConflict)
	if !containsText(c.Message, "spec.bindingSecretName") {
		t.Errorf("the message does not say how to fix it: %s", c.Message)
	}
	var after corev1.Secret
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(mine), &after); err != nil {
		t.Fatal(err)
	}
	if after.ResourceVersion != mine.ResourceVersion || string(after.Data["password"]) != "hunter2" || len(after.OwnerReferences) > 0 {
		t.Errorf("the foreign Secret was touched: %+v", after)
	}

	prod.Spec.BindingSecretName = "audit-hubflow"
	if err := k8s.Update(ctx, prod); err != nil {
		t.Fatal(err)
	}
	ready(t, prod)
	if prod.Status.Binding == nil || prod.Status.Binding.Name != "audit-hubflow" {
		t.Errorf("status.binding = %+v", prod.Status.Binding)
	}
	bindingOf(t, prod, "audit-hubflow")
}

// A binding Secret follows the object: renamed with bindingSecretName (the
// old one is deleted), restored when edited, unlabelled or deleted behind
// hubflow's back.
func TestBindingIsRenamedAndRestored(t *testing.T) {
	ns := namespace(t)
	create(t, newTopic(ns, "jobs", hubflowv1.AtLeastOnce))
	cons := newConsumer(ns, "worker", "jobs")
	create(t, cons)
	ready(t, cons)
	bindingOf(t, cons, "worker-binding")

	cons.Spec.BindingSecretName = "worker-nats"
	if err := k8s.Update(ctx, cons); err != nil {
		t.Fatal(err)
	}
	eventFor(t, cons, "BindingRemoved")
	eventually(t, wait, func() error {
		err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "worker-binding"}, &corev1.Secret{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("the old binding Secret is still there (%v)", err)
	})
	want := bindingOf(t, cons, "worker-nats")

	var s corev1.Secret
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "worker-nats"}, &s); err != nil {
		t.Fatal(err)
	}
	s.Data[binding.KeyDurable] = []byte("someone-elses")
	if err := k8s.Update(ctx, &s); err != nil {
		t.Fatal(err)
	}
	eventually(t, wait, func() error {
		if got := bindingOf(t, cons, "worker-nats"); got.Durable != want.Durable {
			return fmt.Errorf("durable still %q", got.Durable)
		}
		return nil
	})

	// Without its label the Secret drops out of the manager's cache; the
	// manager notices the name taken by its own Secret and labels it again.
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(&s), &s); err != nil {
		t.Fatal(err)
	}
	delete(s.Labels, controllers.BindingLabel)
	if err := k8s.Update(ctx, &s); err != nil {
		t.Fatal(err)
	}
	eventually(t, wait, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(&s), &s); err != nil {
			return err
		}
		if s.Labels[controllers.BindingLabel] != "true" {
			return fmt.Errorf("labels %v", s.Labels)
		}
		return nil
	})

	if err := k8s.Delete(ctx, &s); err != nil {
		t.Fatal(err)
	}
	eventFor(t, cons, "BindingRestored")
	eventually(t, wait, func() error {
		var again corev1.Secret
		err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "worker-nats"}, &again)
		switch {
		case err != nil:
			return err
		case again.UID == s.UID:
			return errors.New("not recreated yet")
		}
		return nil
	})
	if got := bindingOf(t, cons, "worker-nats"); !reflect.DeepEqual(got, want) {
		t.Errorf("restored binding\n got %+v\nwant %+v", got, want)
	}
}
