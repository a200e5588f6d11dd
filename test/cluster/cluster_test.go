// Package cluster runs the manager against a three-node JetStream cluster,
// where replicated Topics are real.
package cluster

import (
	"context"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/controllers"
	"github.com/hubflow/hubflow/internal/semantic"
	"github.com/hubflow/hubflow/internal/testenv"
	"github.com/hubflow/hubflow/internal/testhub"
	"github.com/hubflow/hubflow/internal/testnats"
)

func TestReplicatedTopicOnACluster(t *testing.T) {
	ctx := context.Background()
	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer env.Stop()
	dir := t.TempDir()
	cluster, err := testnats.StartCluster(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Stop()
	mgr, err := testhub.Start(env.Config, env.Scheme, cluster.URL(),
		controllers.Options{ResyncInterval: time.Hour, ObserveInterval: time.Second, MaxConcurrentReconciles: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer mgr.Stop()
	js := testnats.Connect(t, cluster.URL())

	k8s := env.Client
	topic := &hubflowv1.Topic{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "payments"},
		Spec:       hubflowv1.TopicSpec{Semantic: hubflowv1.ExactlyOnce, Replicas: 3},
	}
	cons := &hubflowv1.Consumer{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "ledger"},
		Spec:       hubflowv1.ConsumerSpec{TopicRef: hubflowv1.TopicReference{Name: "payments"}},
	}
	for _, o := range []client.Object{topic, cons} {
		if err := k8s.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	for _, o := range []client.Object{topic, cons} {
		waitReady(t, k8s, o)
	}

	s, err := js.Stream(ctx, semantic.StreamName("default", "payments"))
	if err != nil {
		t.Fatal(err)
	}
	info := s.CachedInfo()
	if info.Config.Replicas != 3 || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("stream replicas %d, cluster %+v: want a leader and two followers", info.Config.Replicas, info.Cluster)
	}
	c, err := js.Consumer(ctx, info.Config.Name, "ledger")
	if err != nil {
		t.Fatal(err)
	}
	if ci := c.CachedInfo(); ci.Cluster == nil || len(ci.Cluster.Replicas) != 2 {
		t.Errorf("durable is not replicated with its stream: %+v", ci.Cluster)
	}
	t.Logf("stream %s: leader %s, %d followers", info.Config.Name, info.Cluster.Leader, len(info.Cluster.Replicas))
}

func waitReady(t *testing.T, k8s client.Client, obj client.Object) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := k8s.Get(context.Background(), client.ObjectKeyFromObject(obj), obj)
		var conds []metav1.Condition
		switch o := obj.(type) {
		case *hubflowv1.Topic:
			conds = o.Status.Conditions
		case *hubflowv1.Consumer:
			conds = o.Status.Conditions
		}
		if err == nil && meta.IsStatusConditionTrue(conds, hubflowv1.ConditionReady) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready: %v %+v", obj.GetName(), err, conds)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
