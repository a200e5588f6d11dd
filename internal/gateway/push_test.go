package gateway_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/internal/deadletter"
	"github.com/hubflow/hubflow/internal/gateway"
	"github.com/hubflow/hubflow/internal/semantic"
	"github.com/hubflow/hubflow/internal/testkube"
	"github.com/hubflow/hubflow/pkg/pushsig"
)

// endpoint records what it was sent and answers by the payload: "ok" 200,
// "flaky" 503 the first time then 200, "bad" 400, "down" always 500.
type endpoint struct {
	mu    sync.Mutex
	calls []string // "<payload> <delivery> <idempotency key>"
	seen  map[string]int
}

func (e *endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	e.mu.Lock()
	e.calls = append(e.calls, fmt.Sprintf("%s %s %s", body, r.Header.Get(gateway.HeaderDelivery), r.Header.Get(gateway.IdempotencyKeyHeader)))
	e.seen[string(body)]++
	n := e.seen[string(body)]
	e.mu.Unlock()
	switch {
	case string(body) == "bad":
		http.Error(w, "amount is negative", http.StatusBadRequest)
	case string(body) == "down", string(body) == "flaky" && n == 1:
		http.Error(w, "try later", http.StatusServiceUnavailable)
	}
}

func (e *endpoint) snapshot() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.calls)
}

func startPusher(t *testing.T) {
	t.Helper()
	nc := hubNATSConn(t)
	p := &gateway.Pusher{Reader: k8s, NATS: nc, Log: logr.Discard(), Interval: 200 * time.Millisecond, Registry: prometheus.NewRegistry()}
	pctx, cancel := contextWithCancel()
	done := make(chan struct{})
	go func() { _ = p.Run(pctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func pushConsumer(t *testing.T, ns, topic string, url string, edit func(*hubflowv1.Consumer)) *hubflowv1.Consumer {
	t.Helper()
	c := testkube.Consumer(ns, "webhook", topic)
	c.Spec.Push = &hubflowv1.PushEndpoint{URL: url}
	if edit != nil {
		edit(c)
	}
	testkube.CreateBound(t, k8s, c)
	return c
}

// An acknowledged push consumer: 2xx acknowledges, 5xx redelivers the same
// message under the same Idempotency-Key, 4xx terminates it, into the
// dead-letter Topic.
func TestPushKeepsTheConsumersSemantic(t *testing.T) {
	ns := testkube.Namespace(t, k8s)
	flow(t, ns, "orders", hubflowv1.ExactlyOnce, nil)
	flow(t, ns, "dead", hubflowv1.AtLeastOnce, nil)
	ep := &endpoint{seen: map[string]int{}}
	srv := httptest.NewServer(ep)
	t.Cleanup(srv.Close)
	cons := pushConsumer(t, ns, "orders", srv.URL, func(c *hubflowv1.Consumer) {
		c.Spec.AckWait = &metav1.Duration{Duration: 2 * time.Second}
		c.Spec.Backoff = []metav1.Duration{{Duration: time.Second}}
		c.Spec.DeadLetter = &hubflowv1.DeadLetter{TopicRef: hubflowv1.TopicReference{Name: "dead"}}
	})
	startPusher(t)
	for i, body := range []string{"ok", "flaky", "bad"} {
		m := nats.NewMsg(ns + ".orders")
		m.Data = []byte(body)
		m.Header.Set(nats.MsgIdHdr, fmt.Sprintf("order-%d", i))
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	stream := semantic.StreamName(ns, "orders")
	testkube.Eventually(t, 30*time.Second, func() error {
		info, err := js.Consumer(ctx, stream, cons.Status.DurableName)
		if err != nil {
			return err
		}
		ci := info.CachedInfo()
		if ci.NumPending != 0 || ci.NumAckPending != 0 || len(ep.snapshot()) < 4 {
			return fmt.Errorf("pending %d, ack pending %d, calls %v", ci.NumPending, ci.NumAckPending, ep.snapshot())
		}
		return nil
	})
	time.Sleep(3 * time.Second) // past the ack wait: nothing more may come
	got := ep.snapshot()
	slices.Sort(got)
	want := []string{"bad 1 order-2", "flaky 1 order-1", "flaky 2 order-1", "ok 1 order-0"}
	if !slices.Equal(got, want) {
		t.Errorf("endpoint calls %v, want %v", got, want)
	}
	dead := semantic.StreamName(ns, "dead")
	testkube.Eventually(t, 30*time.Second, func() error {
		s, err := js.Stream(ctx, dead)
		if err != nil {
			return err
		}
		if s.CachedInfo().State.Msgs != 1 {
			return fmt.Errorf("%d dead letters, want 1", s.CachedInfo().State.Msgs)
		}
		m, err := s.GetMsg(ctx, 1)
		if err != nil {
			return err
		}
		if string(m.Data) != "bad" || !strings.Contains(m.Header.Get(deadletter.HeaderError), "answered 400 amount is negative") {
			return fmt.Errorf("dead letter %q error %q", m.Data, m.Header.Get(deadletter.HeaderError))
		}
		return nil
	})
}

// AtMostOnce never redelivers, whatever the endpoint answers.
func TestPushAtMostOnceNeverRedelivers(t *testing.T) {
	ns := testkube.Namespace(t, k8s)
	flow(t, ns, "clicks", hubflowv1.AtMostOnce, nil)
	ep := &endpoint{seen: map[string]int{}}
	srv := httptest.NewServer(ep)
	t.Cleanup(srv.Close)
	pushConsumer(t, ns, "clicks", srv.URL, nil)
	startPusher(t)
	time.Sleep(time.Second) // the pusher picks the Consumer up
	if _, err := js.Publish(ctx, ns+".clicks", []byte("down")); err != nil {
		t.Fatal(err)
	}
	testkube.Eventually(t, 30*time.Second, func() error {
		if len(ep.snapshot()) == 0 {
			return fmt.Errorf("not delivered")
		}
		return nil
	})
	time.Sleep(3 * time.Second)
	if got := ep.snapshot(); len(got) != 1 {
		t.Errorf("endpoint calls %v, want one", got)
	}
}

// A gateway shutting down finishes the push it has in flight, and settles
// it: the message is acknowledged, not left to come back after the ack
// wait.
func TestPushInFlightIsSettledOnShutdown(t *testing.T) {
	ns := testkube.Namespace(t, k8s)
	flow(t, ns, "orders", hubflowv1.AtLeastOnce, nil)
	arrived, release := make(chan struct{}), make(chan struct{})
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if calls.Add(1) == 1 {
			close(arrived)
			<-release
		}
	}))
	t.Cleanup(srv.Close)
	cons := pushConsumer(t, ns, "orders", srv.URL, func(c *hubflowv1.Consumer) {
		c.Spec.AckWait = &metav1.Duration{Duration: 2 * time.Second}
		c.Spec.Push.Timeout = &metav1.Duration{Duration: 30 * time.Second}
	})
	p := &gateway.Pusher{Reader: k8s, NATS: hubNATSConn(t), Log: logr.Discard(), Interval: 200 * time.Millisecond, Registry: prometheus.NewRegistry()}
	pctx, cancel := contextWithCancel()
	done := make(chan struct{})
	go func() { _ = p.Run(pctx); close(done) }()
	if _, err := js.Publish(ctx, ns+".orders", []byte("one")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-arrived:
	case <-time.After(30 * time.Second):
		t.Fatal("the push never arrived")
	}
	cancel() // SIGTERM while the endpoint is still answering
	select {
	case <-done:
		t.Fatal("the pusher stopped with a push in flight")
	case <-time.After(500 * time.Millisecond):
	}
	close(release)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the pusher did not stop after the push was answered")
	}
	c, err := js.Consumer(ctx, semantic.StreamName(ns, "orders"), cons.Status.DurableName)
	if err != nil {
		t.Fatal(err)
	}
	if ci := c.CachedInfo(); ci.NumAckPending != 0 || ci.AckFloor.Stream != 1 {
		t.Errorf("after shutdown: ack pending %d, ack floor %d; want the push acknowledged", ci.NumAckPending, ci.AckFloor.Stream)
	}
}

// A Consumer whose push requests are signed gets nothing while its Secret
// is missing, then requests that verify with the secret, after the Secret
// is rotated with the new one, and nothing once it is deleted.
func TestPushRequestsAreSigned(t *testing.T) {
	ns := testkube.Namespace(t, k8s)
	flow(t, ns, "orders", hubflowv1.AtLeastOnce, nil)
	type request struct {
		body           []byte
		key, signature string
	}
	got := make(chan request, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- request{body, r.Header.Get(gateway.IdempotencyKeyHeader), r.Header.Get(pushsig.Header)}
	}))
	t.Cleanup(srv.Close)
	pushConsumer(t, ns, "orders", srv.URL, func(c *hubflowv1.Consumer) {
		c.Spec.Push.Signing = &hubflowv1.PushSigning{SecretRef: hubflowv1.SecretKeyReference{Name: "hook-secret", Key: "hmac"}}
	})
	startPusher(t)
	if _, err := js.Publish(ctx, ns+".orders", []byte("first")); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-got:
		t.Fatalf("delivered %q (signature %q) while the signing Secret is missing", r.body, r.signature)
	case <-time.After(2 * time.Second):
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hook-secret"}, Data: map[string][]byte{"hmac": []byte("one")}}
	if err := k8s.Create(ctx, secret); err != nil {
		t.Fatal(err)
	}
	verified := func(want string, secret string) {
		t.Helper()
		select {
		case r := <-got:
			if string(r.body) != want {
				t.Fatalf("delivered %q, want %q", r.body, want)
			}
			if err := pushsig.Verify(r.signature, r.key, r.body, time.Now(), 0, []byte(secret)); err != nil {
				t.Fatalf("signature %q of %q (key %q) with secret %q: %v", r.signature, r.body, r.key, secret, err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("%q not delivered", want)
		}
	}
	verified("first", "one")
	secret.Data["hmac"] = []byte("two")
	if err := k8s.Update(ctx, secret); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // past the pusher's interval: the new secret is read
	if _, err := js.Publish(ctx, ns+".orders", []byte("second")); err != nil {
		t.Fatal(err)
	}
	verified("second", "two")
	// The Secret deleted: delivery stops again rather than going unsigned.
	if err := k8s.Delete(ctx, secret); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // past the pusher's interval
	if _, err := js.Publish(ctx, ns+".orders", []byte("third")); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-got:
		t.Fatalf("delivered %q (signature %q) after the signing Secret was deleted", r.body, r.signature)
	case <-time.After(2 * time.Second):
	}
}

// The trace context a message carries (as pkg/hubflowotel or an HTTP
// caller of the gateway wrote it) reaches the push endpoint as W3C HTTP
// headers, so the endpoint's span continues the producer's trace.
func TestPushCarriesTheTraceContext(t *testing.T) {
	ns := testkube.Namespace(t, k8s)
	flow(t, ns, "orders", hubflowv1.AtLeastOnce, nil)
	got := make(chan http.Header, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { got <- r.Header.Clone() }))
	t.Cleanup(srv.Close)
	pushConsumer(t, ns, "orders", srv.URL, nil)
	startPusher(t)
	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	m := nats.NewMsg(ns + ".orders")
	m.Data = []byte("traced")
	m.Header.Set("traceparent", parent)
	m.Header.Set("tracestate", "shop=checkout")
	m.Header.Set("baggage", "tenant=acme")
	if _, err := js.PublishMsg(ctx, m); err != nil {
		t.Fatal(err)
	}
	select {
	case h := <-got:
		for name, want := range map[string]string{"Traceparent": parent, "Tracestate": "shop=checkout", "Baggage": "tenant=acme"} {
			if v := h.Get(name); v != want {
				t.Errorf("push request %s = %q, want %q", name, v, want)
			}
		}
	case <-time.After(30 * time.Second):
		t.Fatal("nothing pushed in 30s")
	}
}
