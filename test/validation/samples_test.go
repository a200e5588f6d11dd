package validation

import (
	"context"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"

	hubflowv1alpha1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/internal/manifests"
	"github.com/hubflow/hubflow/internal/testenv"
)

// TestSamples creates every object of config/samples in a fresh namespace, the
// way "kubectl apply -k config/samples -n <ns>" would, and checks what the API
// server stored.
func TestSamples(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(testenv.RepoRoot(), "config", "samples")

	kustomization, err := manifests.ReadKustomization(dir)
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if name := filepath.Base(f); name != "kustomization.yaml" && !slices.Contains(kustomization.Resources, name) {
			t.Errorf("%s is not listed in kustomization.yaml", name)
		}
	}

	ns := newNamespace(t)
	created := map[string]int{}
	for _, file := range kustomization.Resources {
		objs, err := manifests.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		if len(objs) < 3 {
			t.Errorf("%s: %d objects, want a Topic, a Producer and at least one Consumer", file, len(objs))
		}
		for _, obj := range objs {
			if obj.GetNamespace() != "" {
				t.Errorf("%s: %s %s sets a namespace; samples must leave it to the user", file, obj.GetKind(), obj.GetName())
			}
			obj.SetNamespace(ns)
			if err := k8s.Create(ctx, obj, strict); err != nil {
				t.Errorf("%s: creating %s %s: %v", file, obj.GetKind(), obj.GetName(), err)
				continue
			}
			created[obj.GetKind()]++
		}
	}
	t.Logf("created %d Topics, %d Producers, %d Consumers from %v", created["Topic"], created["Producer"], created["Consumer"], kustomization.Resources)
	if t.Failed() {
		return
	}

	// What the server filled in for settings the samples leave out.
	var topic hubflowv1alpha1.Topic
	get(t, ns, "site-activity", &topic)
	if topic.Spec.Replicas != 1 {
		t.Errorf("site-activity replicas = %d, want the default 1", topic.Spec.Replicas)
	}
	var dashboard hubflowv1alpha1.Consumer
	get(t, ns, "activity-dashboard", &dashboard)
	if dashboard.Spec.Semantic != nil {
		t.Errorf("activity-dashboard semantic = %q, want unset so that it inherits the Topic's", *dashboard.Spec.Semantic)
	}
	var ledger hubflowv1alpha1.Consumer
	get(t, ns, "payment-ledger", &ledger)
	if ledger.Spec.DurableName != "ledger" || len(ledger.Spec.Backoff) != 2 {
		t.Errorf("payment-ledger stored as %+v", ledger.Spec)
	}
	var payments hubflowv1alpha1.Topic
	get(t, ns, "payments", &payments)
	if payments.Spec.DuplicateWindow == nil || payments.Spec.DuplicateWindow.Duration.Minutes() != 5 {
		t.Errorf("payments duplicateWindow = %v, want 5m", payments.Spec.DuplicateWindow)
	}
}

// TestDefaults checks the CRD defaults on the smallest objects the API accepts.
func TestDefaults(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)

	bare := manifest(t, ns, "kind: Topic\nmetadata: {name: bare}")
	if err := k8s.Create(ctx, bare, strict); err != nil {
		t.Fatalf("Topic without spec: %v", err)
	}
	var topic hubflowv1alpha1.Topic
	get(t, ns, "bare", &topic)
	want := hubflowv1alpha1.TopicSpec{
		Semantic:       hubflowv1alpha1.AtLeastOnce,
		Storage:        hubflowv1alpha1.FileStorage,
		Replicas:       1,
		DeletionPolicy: hubflowv1alpha1.RetainOnDelete,
	}
	if !reflect.DeepEqual(topic.Spec, want) {
		t.Errorf("Topic without spec defaulted to %+v, want %+v", topic.Spec, want)
	}

	if err := k8s.Create(ctx, manifest(t, ns, "kind: Topic\nmetadata: {name: telemetry}\nspec: {semantic: AtMostOnce}"), strict); err != nil {
		t.Fatalf("AtMostOnce Topic: %v", err)
	}
	get(t, ns, "telemetry", &topic)
	if topic.Spec.Storage != hubflowv1alpha1.FileStorage || topic.Spec.Discard != "" {
		t.Errorf("AtMostOnce Topic: storage %q discard %q, want File and unset (the operator picks Old)", topic.Spec.Storage, topic.Spec.Discard)
	}

	if err := k8s.Create(ctx, manifest(t, ns, "kind: Consumer\nmetadata: {name: reader}\nspec: {topicRef: {name: bare}}"), strict); err != nil {
		t.Fatalf("minimal Consumer: %v", err)
	}
	var consumer hubflowv1alpha1.Consumer
	get(t, ns, "reader", &consumer)
	if s := consumer.Spec; s.DeliverPolicy != hubflowv1alpha1.DeliverAll || s.Semantic != nil || s.DurableName != "" || s.AckWait != nil {
		t.Errorf("minimal Consumer defaulted to %+v, want deliverPolicy All and nothing else", s)
	}

	if err := k8s.Create(ctx, manifest(t, ns, "kind: Producer\nmetadata: {name: writer}\nspec: {topicRef: {name: bare}}"), strict); err != nil {
		t.Fatalf("minimal Producer: %v", err)
	}
	var producer hubflowv1alpha1.Producer
	get(t, ns, "writer", &producer)
	if s := producer.Spec; s.Semantic != nil || s.Publish != nil || s.Subjects != nil {
		t.Errorf("minimal Producer defaulted to %+v, want nothing but topicRef", s)
	}
}

func get(t *testing.T, ns, name string, obj client.Object) {
	t.Helper()
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, obj); err != nil {
		t.Fatalf("getting %s: %v", name, err)
	}
}
