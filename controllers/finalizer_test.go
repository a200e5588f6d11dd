package controllers_test

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/hubflow/hubflow/controllers"
)

const otherFinalizer = "example.com/other-controller"

// A finalizer another controller adds between hubflow's read and its write
// survives both hubflow's add and its remove: the write carries the
// resourceVersion it read and fails instead of replacing the list.
func TestFinalizersKeepAConcurrentWritersFinalizer(t *testing.T) {
	ns := namespace(t)
	obj := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "shared"}}
	create(t, obj)
	t.Cleanup(func() {
		var cm corev1.ConfigMap
		if k8s.Get(ctx, client.ObjectKeyFromObject(obj), &cm) == nil {
			cm.Finalizers = nil
			_ = k8s.Update(ctx, &cm)
		}
	})

	for _, step := range []struct {
		name string
		call func(client.Object) error
		want []string
	}{
		{"add", func(o client.Object) error { return controllers.EnsureFinalizer(ctx, k8s, o) },
			[]string{"hubflow.io/jetstream", otherFinalizer}},
		{"remove", func(o client.Object) error { return controllers.RemoveFinalizer(ctx, k8s, o) },
			[]string{otherFinalizer}},
	} {
		t.Run(step.name, func(t *testing.T) {
			stale := &corev1.ConfigMap{}
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(obj), stale); err != nil {
				t.Fatal(err)
			}
			// The other controller writes after hubflow's read.
			var fresh corev1.ConfigMap
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(obj), &fresh); err != nil {
				t.Fatal(err)
			}
			fresh.Finalizers = slices.DeleteFunc(fresh.Finalizers, func(f string) bool { return f == otherFinalizer })
			fresh.Finalizers = append(fresh.Finalizers, otherFinalizer)
			if err := k8s.Update(ctx, &fresh); err != nil {
				t.Fatal(err)
			}

			err := step.call(stale)
			if err != nil && !apierrors.IsConflict(err) {
				t.Fatalf("want success or a conflict, got %v", err)
			}
			if err != nil {
				// The reconciler retries on the error: it re-reads, then writes.
				if err := k8s.Get(ctx, client.ObjectKeyFromObject(obj), stale); err != nil {
					t.Fatal(err)
				}
				if err := step.call(stale); err != nil {
					t.Fatalf("retry after the conflict: %v", err)
				}
			}
			var got corev1.ConfigMap
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(obj), &got); err != nil {
				t.Fatal(err)
			}
			if !sameElements(got.Finalizers, step.want) {
				t.Fatalf("finalizers are %v, want %v (the first call returned %v)", got.Finalizers, step.want, err)
			}
		})
	}
}

func sameElements(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
