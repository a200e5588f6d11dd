// Package gatewaycluster proves the HTTP gateway's promises on a three-node
// JetStream cluster while the stream's leader is killed under HTTP ingest
// and push delivery at once. Each message is counted, per identity (the
// payload), where the stream stored it and where the endpoint processed
// it, with the accounting of test/faults: ExactlyOnce 0 lost and 0 twice,
// AtLeastOnce 0 lost, AtMostOnce 0 twice.
package gatewaycluster

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/controllers"
	"github.com/hubflow/hubflow/internal/gateway"
	"github.com/hubflow/hubflow/internal/semantic"
	"github.com/hubflow/hubflow/internal/testdiag"
	"github.com/hubflow/hubflow/internal/testenv"
	"github.com/hubflow/hubflow/internal/testgateway"
	"github.com/hubflow/hubflow/internal/testhub"
	"github.com/hubflow/hubflow/internal/testkube"
	"github.com/hubflow/hubflow/internal/testnats"
)

// messages per semantic: modest, so that the suite stays in `make test`.
const messages = 600

// hub is the API server, the cluster, the manager and one gateway replica
// (ingest and push) on it.
type hub struct {
	k8s     client.Client
	cluster *testnats.Cluster
	gateway string // base URL
}

func startHub(t *testing.T) *hub {
	ctrl.SetLogger(logr.Discard())
	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	cluster := testnats.StartTestCluster(t)
	mgr, err := testhub.Start(env.Config, env.Scheme, cluster.URL(), controllers.Options{
		ResyncInterval: time.Minute, ObserveInterval: time.Second, MaxConcurrentReconciles: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := testdiag.Within(90*time.Second, "stopping the manager", func() { _ = mgr.Stop() }); err != nil {
			t.Error(err)
		}
	})

	ctx, cancel := context.WithCancel(context.Background())
	objects, err := gateway.StartCache(ctx, env.Config, env.Scheme)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	// Registered after the manager's and the cluster's: it runs first.
	t.Cleanup(cancel)
	connect := func(name string) *nats.Conn {
		nc, err := nats.Connect(cluster.URL(), nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	g, err := gateway.New(gateway.Config{Reader: objects, NATS: connect("gateway"), PublishTimeout: 2 * time.Second,
		Auth: &gateway.TokenReviewer{Client: env.Client, CacheFor: time.Minute}, Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	pusher := &gateway.Pusher{Reader: objects, NATS: connect("pusher"), Log: logr.Discard(), Interval: 200 * time.Millisecond,
		Registry: prometheus.NewRegistry()}
	pushed := make(chan struct{})
	go func() { _ = pusher.Run(ctx); close(pushed) }()
	// The pusher settles its requests in flight before Run returns.
	t.Cleanup(func() { cancel(); <-pushed })
	return &hub{k8s: env.Client, cluster: cluster, gateway: srv.URL}
}

func TestStreamLeaderKilledUnderIngestAndPush(t *testing.T) {
	var doing atomic.Pointer[string]
	at := func(step string) { doing.Store(&step) }
	at("starting the hub")
	testdiag.Watchdog(t, func() string { return *doing.Load() })
	h := startHub(t)
	for _, sem := range []hubflowv1.DeliverySemantic{hubflowv1.ExactlyOnce, hubflowv1.AtLeastOnce, hubflowv1.AtMostOnce} {
		t.Run(string(sem), func(t *testing.T) {
			at(string(sem))
			leaderKilled(t, h, sem, at)
		})
	}
}

// endpoint is a push endpoint that answers 200 at once. Its side effect
// is counting each payload; the ExactlyOnce one drops a repeated
// Idempotency-Key, as docs/gateway.md tells an ExactlyOnce endpoint to.
type endpoint struct {
	dedup bool

	mu        sync.Mutex
	processed map[string]int
	keys      map[string]bool
	calls     int
}

func (e *endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	key := r.Header.Get(gateway.IdempotencyKeyHeader)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.calls++
	if !e.dedup || !e.keys[key] {
		e.processed[string(body)]++
		e.keys[key] = true
	}
}

func (e *endpoint) snapshot() (map[string]int, int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]int, len(e.processed))
	for k, v := range e.processed {
		out[k] = v
	}
	return out, e.calls
}

func leaderKilled(t *testing.T, h *hub, sem hubflowv1.DeliverySemantic, at func(string)) {
	ctx := context.Background()
	ns := testkube.Namespace(t, h.k8s)
	stream := semantic.StreamName(ns, "orders")
	ep := &endpoint{dedup: sem == hubflowv1.ExactlyOnce, processed: map[string]int{}, keys: map[string]bool{}}
	webhook := httptest.NewServer(ep)
	t.Cleanup(webhook.Close)

	at(string(sem) + ": declaring the flow")
	topic := testkube.Topic(ns, "orders", sem)
	topic.Spec.Replicas = 3
	producer := testkube.Producer(ns, "orders-http", "orders")
	producer.Spec.Gateway = &hubflowv1.GatewayAccess{ServiceAccounts: []string{"checkout"}}
	cons := testkube.Consumer(ns, "webhook", "orders")
	cons.Spec.Push = &hubflowv1.PushEndpoint{URL: webhook.URL, Timeout: &metav1.Duration{Duration: 2 * time.Second}, Concurrency: ptr(int32(8))}
	if sem != hubflowv1.AtMostOnce {
		cons.Spec.AckWait = &metav1.Duration{Duration: 3 * time.Second}
		cons.Spec.MaxDeliver = ptr(int32(100))
	}
	for _, o := range []client.Object{topic, producer, cons} {
		if err := h.k8s.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	testkube.Eventually(t, time.Minute, func() error {
		for _, o := range []client.Object{topic, producer, cons} {
			if err := h.k8s.Get(ctx, client.ObjectKeyFromObject(o), o); err != nil {
				return err
			}
		}
		for _, c := range [][]metav1.Condition{topic.Status.Conditions, producer.Status.Conditions, cons.Status.Conditions} {
			if !meta.IsStatusConditionTrue(c, hubflowv1.ConditionReady) {
				return fmt.Errorf("not Ready: topic %v, producer %v, consumer %v", topic.Status.Conditions, producer.Status.Conditions, cons.Status.Conditions)
			}
		}
		return nil
	})
	tok := testgateway.Token(t, h.k8s, ns, "checkout", gateway.Audience)
	path := fmt.Sprintf("/v1/namespaces/%s/topics/orders/messages", ns)
	httpc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 8}}

	at(string(sem) + ": publishing over HTTP while the endpoint is pushed to")
	ids := make(chan int)
	killed := make(chan string, 1)
	// The messages are spread over about spread, so that the leader dies
	// (and stays down for 2 s) with traffic before, during and after.
	const spread = 6 * time.Second
	go func() {
		defer close(ids)
		tick := time.NewTicker(spread / messages)
		defer tick.Stop()
		for i := range messages {
			if i == messages/3 {
				go func() {
					what, err := killLeader(h.cluster, stream)
					if err != nil {
						what = "the kill failed: " + err.Error()
					}
					killed <- what
				}()
			}
			<-tick.C
			ids <- i
		}
	}()
	var retries, gaveUp atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range ids {
				// A client retries for 30 s at most (the gateway answers 503
				// within its 2 s publish timeout).
				out := testgateway.PublishRetrying(httpc, []string{h.gateway}, path, tok, fmt.Sprintf("m-%05d", i), sem, 300, 100*time.Millisecond)
				retries.Add(int64(out.Retries))
				if out.Err != nil {
					gaveUp.Add(1)
					t.Log(out.Err)
				}
			}
		})
	}
	wg.Wait()
	t.Logf("%s: %s", sem, <-killed)

	at(string(sem) + ": waiting for the durable to be drained")
	js := testnats.Connect(t, h.cluster.URL())
	testkube.Eventually(t, 2*time.Minute, func() error {
		c, err := js.Consumer(ctx, stream, cons.Status.DurableName)
		if err != nil {
			return err
		}
		if ci := c.CachedInfo(); ci.NumPending != 0 || ci.NumAckPending != 0 {
			return fmt.Errorf("durable %s: %d pending, %d unacknowledged", cons.Status.DurableName, ci.NumPending, ci.NumAckPending)
		}
		return nil
	})

	at(string(sem) + ": counting")
	inStream := testgateway.StoredPayloads(t, js, stream)
	processed, calls := ep.snapshot()
	var storedLost, storedTwice, pushLost, pushTwice int
	for i := range messages {
		id := fmt.Sprintf("m-%05d", i)
		switch n := inStream[id]; {
		case n == 0:
			storedLost++
		case n > 1:
			storedTwice++
		}
		// A message the stream never stored cannot be pushed; it is
		// counted once, as lost at ingest.
		switch n := processed[id]; {
		case n == 0 && inStream[id] > 0:
			pushLost++
		case n > 1:
			pushTwice++
		}
	}
	t.Logf("%s: %d messages over HTTP, %d retries, %d given up; stream: %d lost, %d stored twice; endpoint: %d calls, %d stored messages not processed, %d processed twice",
		sem, messages, retries.Load(), gaveUp.Load(), storedLost, storedTwice, calls, pushLost, pushTwice)
	if sem != hubflowv1.AtMostOnce && (storedLost > 0 || pushLost > 0 || gaveUp.Load() > 0) {
		t.Errorf("%s lost messages: %d never stored (%d publishes given up), %d stored and never processed", sem, storedLost, gaveUp.Load(), pushLost)
	}
	if sem != hubflowv1.AtLeastOnce && (storedTwice > 0 || pushTwice > 0) {
		t.Errorf("%s duplicated messages: %d stored twice, %d processed twice", sem, storedTwice, pushTwice)
	}
}

// killLeader stops the node leading stream, keeps it down for two seconds
// and starts it again on its ports and store.
func killLeader(c *testnats.Cluster, stream string) (string, error) {
	node := c.StreamLeader(testnats.GlobalAccount, stream)
	for deadline := time.Now().Add(10 * time.Second); node == nil; node = c.StreamLeader(testnats.GlobalAccount, stream) {
		if time.Now().After(deadline) {
			return "", fmt.Errorf("stream %s has no leader to kill", stream)
		}
		time.Sleep(20 * time.Millisecond)
	}
	name := node.Server().Name()
	if err := testdiag.Within(90*time.Second, "stopping nats-server "+name, node.Stop); err != nil {
		return "", err
	}
	time.Sleep(2 * time.Second)
	var err error
	if werr := testdiag.Within(90*time.Second, "restarting nats-server "+name, func() { err = node.Restart() }); werr != nil {
		return "", werr
	}
	if err != nil {
		return "", fmt.Errorf("restarting %s: %w", name, err)
	}
	return fmt.Sprintf("killed %s, the leader of %s, for 2s under ingest and push; restarted it", name, stream), nil
}

func ptr[T any](v T) *T { return &v }
