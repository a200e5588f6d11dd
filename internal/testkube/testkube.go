// Package testkube holds what every envtest suite of hubflow does the same
// way: a fresh namespace per test, waiting for a state, and minimal objects.
package testkube

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
)

var seq atomic.Int32

// Namespace creates a namespace named after the test (a DNS label, unique
// in the process) and returns its name.
func Namespace(t testing.TB, c client.Client) string {
	t.Helper()
	// Anything a DNS label cannot hold ("/", "_", "=", "#") becomes "-".
	label := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, strings.ToLower(t.Name()))
	name := fmt.Sprintf("t%d-%s", seq.Add(1), label)
	name = strings.TrimRight(name[:min(len(name), 50)], "-")
	if err := c.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatal(err)
	}
	return name
}

// Eventually polls check until it returns nil or the timeout passes. It
// waits for a state; it never asserts how long that took.
func Eventually(t testing.TB, timeout time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still not true after %s: %v", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Topic is a Topic with only a semantic declared.
func Topic(ns, name string, sem hubflowv1.DeliverySemantic) *hubflowv1.Topic {
	return &hubflowv1.Topic{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: hubflowv1.TopicSpec{Semantic: sem}}
}

// Consumer is a Consumer of topic with nothing else declared.
func Consumer(ns, name, topic string) *hubflowv1.Consumer {
	return &hubflowv1.Consumer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: hubflowv1.ConsumerSpec{TopicRef: hubflowv1.TopicReference{Name: topic}}}
}

// Producer is a Producer of topic with nothing else declared.
func Producer(ns, name, topic string) *hubflowv1.Producer {
	return &hubflowv1.Producer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: hubflowv1.ProducerSpec{TopicRef: hubflowv1.TopicReference{Name: topic}}}
}

// SyncBuffer is a bytes.Buffer that goroutines (a manager's logger, a child
// process's output) may write while a test reads it.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// CreateBound creates cons and waits until the manager has bound it to its
// durable (status.durableName set); cons holds what the server returned.
func CreateBound(t testing.TB, k8s client.Client, cons *hubflowv1.Consumer) {
	t.Helper()
	if err := k8s.Create(context.Background(), cons); err != nil {
		t.Fatal(err)
	}
	Eventually(t, 30*time.Second, func() error {
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(cons), cons); err != nil {
			return err
		}
		if cons.Status.DurableName == "" {
			return fmt.Errorf("consumer %s/%s not bound to a durable: %v", cons.Namespace, cons.Name, cons.Status.Conditions)
		}
		return nil
	})
}

// Conditions are the status conditions of a Topic, Producer or Consumer.
func Conditions(obj client.Object) []metav1.Condition {
	switch o := obj.(type) {
	case *hubflowv1.Topic:
		return o.Status.Conditions
	case *hubflowv1.Producer:
		return o.Status.Conditions
	case *hubflowv1.Consumer:
		return o.Status.Conditions
	}
	return nil
}

// WaitCondition waits until obj's condition typ has status and reason (any
// reason when empty) for obj's current generation, and returns it; obj
// holds what was read last.
func WaitCondition(t testing.TB, k8s client.Client, timeout time.Duration, obj client.Object, typ string, status metav1.ConditionStatus, reason string) metav1.Condition {
	t.Helper()
	var got metav1.Condition
	Eventually(t, timeout, func() error {
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		c := meta.FindStatusCondition(Conditions(obj), typ)
		if c == nil {
			return fmt.Errorf("%s %s: no %s condition yet", obj.GetNamespace(), obj.GetName(), typ)
		}
		got = *c
		if c.Status != status || (reason != "" && c.Reason != reason) {
			return fmt.Errorf("%s %s: %s is %s/%s: %s", obj.GetNamespace(), obj.GetName(), typ, c.Status, c.Reason, c.Message)
		}
		if c.ObservedGeneration != obj.GetGeneration() {
			return fmt.Errorf("%s %s: %s describes generation %d, the object is at %d", obj.GetNamespace(), obj.GetName(), typ, c.ObservedGeneration, obj.GetGeneration())
		}
		return nil
	})
	return got
}
