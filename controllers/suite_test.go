package controllers_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zapcore"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/controllers"
	"github.com/hubflow/hubflow/internal/testenv"
	"github.com/hubflow/hubflow/internal/testhub"
	"github.com/hubflow/hubflow/internal/testkube"
	"github.com/hubflow/hubflow/internal/testnats"
)

// The suite runs the real manager against a real kube-apiserver (envtest)
// and a real in-process nats-server, and observes it only from outside: the
// Kubernetes API and an independent JetStream client.
var (
	k8s     client.Client
	watcher client.WithWatch // for tests that see every write to an object
	hubNATS *testnats.Server
	js      jetstream.JetStream // the test's own view of the hub
	ctx     = context.Background()
)

const (
	testResync  = time.Hour // long, so healing in the tests is due to advisories and the lag collector
	testObserve = 500 * time.Millisecond
	testCluster = "envtest"
	// testWindowGrace: a window held for a deleted Producer shrinks after
	// this, short so a test sees both sides.
	testWindowGrace = 6 * time.Second
	// testDeadLetterAckWait: a dead-letter move cut short is handed out
	// again after this.
	testDeadLetterAckWait = 2 * time.Second
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapLevel())))
	env, err := testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer env.Stop()
	k8s = env.Client
	if watcher, err = client.NewWithWatch(env.Config, client.Options{Scheme: env.Scheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}

	dir, _ := os.MkdirTemp("", "hubflow-controllers-")
	defer os.RemoveAll(dir)
	if hubNATS, err = testnats.Start(dir, 0); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { hubNATS.Stop() }()

	own, err := nats.Connect(hubNATS.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer own.Close()
	js, _ = jetstream.New(own)

	mgr, err := testhub.Start(env.Config, env.Scheme, hubNATS.URL(),
		controllers.Options{ResyncInterval: testResync, ObserveInterval: testObserve, MaxConcurrentReconciles: 4, ClusterName: testCluster, WindowHoldGrace: testWindowGrace, DeadLetterAckWait: testDeadLetterAckWait})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer mgr.Stop()
	return m.Run()
}

func zapLevel() zapcore.Level {
	if os.Getenv("HUBFLOW_TEST_LOG") != "" {
		return -1
	}
	return 2 // errors only
}

func namespace(t *testing.T) string { t.Helper(); return testkube.Namespace(t, k8s) }

func eventually(t *testing.T, timeout time.Duration, check func() error) {
	t.Helper()
	testkube.Eventually(t, timeout, check)
}

const wait = 20 * time.Second

// condition waits until obj's condition typ has the status and reason.
func condition(t *testing.T, obj client.Object, typ string, status metav1.ConditionStatus, reason string) metav1.Condition {
	t.Helper()
	return testkube.WaitCondition(t, k8s, wait, obj, typ, status, reason)
}

func ready(t *testing.T, obj client.Object) {
	t.Helper()
	condition(t, obj, hubflowv1.ConditionReady, metav1.ConditionTrue, controllers.ReasonReady)
}

var conditionsOf = testkube.Conditions

// eventFor waits for an event with reason about obj.
func eventFor(t *testing.T, obj client.Object, reason string) eventsv1.Event {
	t.Helper()
	var found eventsv1.Event
	eventually(t, wait, func() error {
		var list eventsv1.EventList
		if err := k8s.List(ctx, &list, client.InNamespace(obj.GetNamespace())); err != nil {
			return err
		}
		for _, e := range list.Items {
			if e.Regarding.Name == obj.GetName() && e.Reason == reason {
				found = e
				return nil
			}
		}
		return fmt.Errorf("no %s event for %s among %d events", reason, obj.GetName(), len(list.Items))
	})
	return found
}

func create(t *testing.T, objs ...client.Object) {
	t.Helper()
	for _, o := range objs {
		if err := k8s.Create(ctx, o); err != nil {
			t.Fatalf("create %T %s: %v", o, o.GetName(), err)
		}
	}
}

var (
	newTopic    = testkube.Topic
	newConsumer = testkube.Consumer
	newProducer = testkube.Producer
)

func semPtr(s hubflowv1.DeliverySemantic) *hubflowv1.DeliverySemantic { return &s }
