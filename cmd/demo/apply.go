package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/internal/manifests"
	"github.com/hubflow/hubflow/internal/testenv"
)

const demoNamespace = "demo"

// flow is one sample file: a Topic with its Producers and Consumers, and
// the Topic where one of them sets its dead letters aside, if one does.
type flow struct {
	file      string
	topic     string
	semantic  hubflowv1.DeliverySemantic
	producers []string
	consumers []string
	// topics are all of the file's Topics, the flow's own first.
	topics     []string
	deadLetter *deadLetterRoute
}

// deadLetterRoute is a Consumer that declares a dead-letter Topic.
type deadLetterRoute struct {
	consumer string
	topic    string
}

// applySamples creates config/samples in the demo namespace, as
// `kubectl apply -k config/samples -n demo` would. On the three-node hub the
// acknowledged Topics get 3 replicas, which is what the samples recommend
// for a cluster.
//
// With faults, each acknowledged Consumer's ackWait is shortened to 2s (and
// its backoff dropped), so the message its killed instance handled but did
// not acknowledge is redelivered within the run.
func applySamples(ctx context.Context, p *platform, faults bool) ([]flow, error) {
	dir := filepath.Join(testenv.RepoRoot(), "config", "samples")
	progress("applying %s to namespace %q (AtLeastOnce and ExactlyOnce Topics with replicas: 3)", "config/samples", demoNamespace)
	if faults {
		fmt.Printf("    fault run: acknowledged Consumers get ackWait %s, so redeliveries show within the run\n", faultAckWait)
	}
	k8s := p.env.Client
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: demoNamespace}}); err != nil {
		return nil, err
	}
	kustomization, err := manifests.ReadKustomization(dir)
	if err != nil {
		return nil, err
	}
	var flows []flow
	for _, file := range kustomization.Resources {
		objs, err := manifests.ReadFile(filepath.Join(dir, file))
		if err != nil {
			return nil, err
		}
		f := flow{file: file}
		for _, obj := range objs {
			obj.SetNamespace(demoNamespace)
			if err := describe(&f, obj); err != nil {
				return nil, fmt.Errorf("%s: %w", file, err)
			}
			if faults {
				if err := shortenAckWait(f, obj); err != nil {
					return nil, fmt.Errorf("%s: %w", file, err)
				}
			}
			if err := k8s.Create(ctx, obj); err != nil {
				return nil, fmt.Errorf("%s: creating %s %s: %w", file, obj.GetKind(), obj.GetName(), err)
			}
		}
		dead := ""
		if dl := f.deadLetter; dl != nil {
			if !slices.Contains(f.topics[1:], dl.topic) {
				return nil, fmt.Errorf("%s: Consumer %s sets dead letters aside in Topic %s, which is not another Topic of the file", file, dl.consumer, dl.topic)
			}
			dead = fmt.Sprintf("; %s's dead letters go to Topic %s", dl.consumer, dl.topic)
		}
		fmt.Printf("    %-20s Topic %s (%s), %d producer(s), %d consumer(s)%s\n", file, f.topic, f.semantic, len(f.producers), len(f.consumers), dead)
		flows = append(flows, f)
	}
	return flows, nil
}

// describe records obj in its flow and raises an acknowledged Topic to
// three replicas. A file's first Topic is the flow's; a later one takes
// dead letters.
func describe(f *flow, obj *unstructured.Unstructured) error {
	switch obj.GetKind() {
	case "Topic":
		f.topics = append(f.topics, obj.GetName())
		sem, _, _ := unstructured.NestedString(obj.Object, "spec", "semantic")
		if sem == "" {
			sem = string(hubflowv1.AtLeastOnce)
		}
		if f.topic == "" {
			f.topic, f.semantic = obj.GetName(), hubflowv1.DeliverySemantic(sem)
		}
		if hubflowv1.DeliverySemantic(sem) != hubflowv1.AtMostOnce {
			return unstructured.SetNestedField(obj.Object, int64(3), "spec", "replicas")
		}
	case "Producer":
		f.producers = append(f.producers, obj.GetName())
	case "Consumer":
		f.consumers = append(f.consumers, obj.GetName())
		dead, _, _ := unstructured.NestedString(obj.Object, "spec", "deadLetter", "topicRef", "name")
		if dead == "" {
			return nil
		}
		if f.deadLetter != nil {
			return fmt.Errorf("the demo shows one Consumer's dead letters per flow, and %s and %s both declare a dead-letter Topic", f.deadLetter.consumer, obj.GetName())
		}
		f.deadLetter = &deadLetterRoute{consumer: obj.GetName(), topic: dead}
	}
	return nil
}

// faultAckWait is the ack wait of acknowledged Consumers in the fault run.
const faultAckWait = 2 * time.Second

func shortenAckWait(f flow, obj *unstructured.Unstructured) error {
	declared, _, _ := unstructured.NestedString(obj.Object, "spec", "semantic")
	if obj.GetKind() != "Consumer" || f.semantic == hubflowv1.AtMostOnce || declared == string(hubflowv1.AtMostOnce) {
		return nil
	}
	unstructured.RemoveNestedField(obj.Object, "spec", "backoff")
	return unstructured.SetNestedField(obj.Object, faultAckWait.String(), "spec", "ackWait")
}

// waitReady waits until every object of every flow is Ready and shows them.
func waitReady(ctx context.Context, p *platform, flows []flow) error {
	progress("waiting for the operator to make every object Ready and write the bindings")
	start := time.Now()
	for {
		pending, err := notReady(ctx, p.env.Client, flows)
		if err != nil {
			return err
		}
		if len(pending) == 0 {
			break
		}
		if time.Since(start) > 2*time.Minute {
			return fmt.Errorf("not Ready after 2 minutes: %v", pending)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	fmt.Printf("    all Ready in %s\n", time.Since(start).Round(time.Millisecond))
	return nil
}

func notReady(ctx context.Context, k8s client.Client, flows []flow) ([]string, error) {
	var pending []string
	// A Producer or Consumer is usable once Ready and its binding written.
	check := func(kind, name string, obj client.Object, conds func() []metav1.Condition, bound func() bool) error {
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: demoNamespace, Name: name}, obj); err != nil {
			return err
		}
		if !meta.IsStatusConditionTrue(conds(), hubflowv1.ConditionReady) || !bound() {
			pending = append(pending, kind+"/"+name)
		}
		return nil
	}
	always := func() bool { return true }
	for _, f := range flows {
		for _, name := range f.topics {
			t := &hubflowv1.Topic{}
			if err := check("topic", name, t, func() []metav1.Condition { return t.Status.Conditions }, always); err != nil {
				return nil, err
			}
		}
		for _, name := range f.producers {
			pr := &hubflowv1.Producer{}
			if err := check("producer", name, pr, func() []metav1.Condition { return pr.Status.Conditions },
				func() bool { return pr.Status.Binding != nil }); err != nil {
				return nil, err
			}
		}
		for _, name := range f.consumers {
			c := &hubflowv1.Consumer{}
			if err := check("consumer", name, c, func() []metav1.Condition { return c.Status.Conditions },
				func() bool { return c.Status.Binding != nil }); err != nil {
				return nil, err
			}
		}
	}
	return pending, nil
}
