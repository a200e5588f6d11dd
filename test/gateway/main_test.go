// Package gateway_test proves the HTTP gateway's semantics under faults,
// driven by a plain net/http client as docs/gateway.md tells one to behave.
package gateway_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/controllers"
	"github.com/hubflow/hubflow/internal/gateway"
	"github.com/hubflow/hubflow/internal/testenv"
	"github.com/hubflow/hubflow/internal/testgateway"
	"github.com/hubflow/hubflow/internal/testhub"
	"github.com/hubflow/hubflow/internal/testkube"
	"github.com/hubflow/hubflow/internal/testnats"
)

var (
	k8s     client.Client
	hubNATS *testnats.Server
	hubEnv  *testenv.Env
	ctx     = context.Background()
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	stack, err := testhub.StartStack(controllers.Options{ResyncInterval: time.Hour, MaxConcurrentReconciles: 2})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer stack.Stop()
	k8s, hubNATS, hubEnv = stack.Env.Client, stack.NATS, stack.Env
	return m.Run()
}

// newGateway builds a gateway replica on its own NATS connection that reads
// Topics and Producers straight from the API server; the caller serves it
// and decides how it dies.
func newGateway(t testing.TB) (*gateway.Gateway, *nats.Conn) { return gatewayReading(t, k8s) }

// gatewayReading is newGateway reading from objects (cmd/gateway uses an
// informer cache: gateway.StartCache).
func gatewayReading(t testing.TB, objects client.Reader) (*gateway.Gateway, *nats.Conn) {
	t.Helper()
	nc, err := nats.Connect(hubNATS.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	g, err := gateway.New(gateway.Config{Reader: objects, NATS: nc, Auth: &gateway.TokenReviewer{Client: k8s, CacheFor: time.Minute},
		Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	return g, nc
}

// token mints a token of ServiceAccount ns/sa for the gateway.
func token(t testing.TB, ns, sa string) string {
	return testgateway.Token(t, k8s, ns, sa, gateway.Audience)
}

// flow declares a Topic of the semantic and a Producer that lets
// serviceaccount "checkout" publish through the gateway; both become Ready.
func flow(t testing.TB, ns, name string, sem hubflowv1.DeliverySemantic) {
	t.Helper()
	topic := testkube.Topic(ns, name, sem)
	p := testkube.Producer(ns, name+"-http", name)
	p.Spec.Gateway = &hubflowv1.GatewayAccess{ServiceAccounts: []string{"checkout"}}
	for _, o := range []client.Object{topic, p} {
		if err := k8s.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	testkube.Eventually(t, 30*time.Second, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(topic), topic); err != nil {
			return err
		}
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(p), p); err != nil {
			return err
		}
		if !isReady(topic.Status.Conditions) || !isReady(p.Status.Conditions) {
			return fmt.Errorf("not Ready: topic %v producer %v", topic.Status.Conditions, p.Status.Conditions)
		}
		return nil
	})
}

func isReady(conds []metav1.Condition) bool {
	for _, c := range conds {
		if c.Type == hubflowv1.ConditionReady && c.Status == metav1.ConditionTrue {
			return true
		}
	}
	return false
}

// stored counts the stream's messages per identity (the payload).
func stored(t testing.TB, stream string) map[string]int {
	return testgateway.StoredPayloads(t, testnats.Connect(t, hubNATS.URL()), stream)
}

func contextWithCancel() (context.Context, context.CancelFunc) { return context.WithCancel(ctx) }
