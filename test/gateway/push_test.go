package gateway_test

import (
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/internal/gateway"
	"github.com/hubflow/hubflow/internal/semantic"
	"github.com/hubflow/hubflow/internal/testkube"
	"github.com/hubflow/hubflow/internal/testnats"
)

const pushMessages = 300

// failingEndpoint is a real HTTP endpoint that fails at random: a 500
// before doing anything, a dropped connection or a stall past the push
// timeout after the side effect (the answer is lost). Its side effect is
// counting the payload; with dedup it drops a repeated Idempotency-Key, as
// docs/gateway.md tells an ExactlyOnce endpoint to.
type failingEndpoint struct {
	dedup bool
	stall time.Duration

	mu        sync.Mutex
	rnd       *rand.Rand
	processed map[string]int
	keys      map[string]bool
	calls     int
}

func (e *failingEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	key := r.Header.Get(gateway.IdempotencyKeyHeader)
	e.mu.Lock()
	e.calls++
	fate := e.rnd.Intn(100)
	if fate < 15 {
		e.mu.Unlock()
		http.Error(w, "try later", http.StatusInternalServerError)
		return
	}
	if !e.dedup || !e.keys[key] {
		e.processed[string(body)]++
		e.keys[key] = true
	}
	e.mu.Unlock()
	switch {
	case fate < 25:
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	case fate < 30:
		time.Sleep(e.stall)
	}
}

func (e *failingEndpoint) counts() (map[string]int, int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]int, len(e.processed))
	for k, v := range e.processed {
		out[k] = v
	}
	return out, e.calls
}

// The push endpoint fails at random; each message is counted where its
// side effect happened, per identity (the payload).
func TestPushEndpointFailing(t *testing.T) {
	for _, sem := range []hubflowv1.DeliverySemantic{hubflowv1.ExactlyOnce, hubflowv1.AtLeastOnce, hubflowv1.AtMostOnce} {
		t.Run(string(sem), func(t *testing.T) { pushFailing(t, sem) })
	}
}

func pushFailing(t *testing.T, sem hubflowv1.DeliverySemantic) {
	ns := testkube.Namespace(t, k8s)
	flow(t, ns, "orders", sem)
	timeout := 300 * time.Millisecond
	ep := &failingEndpoint{dedup: sem == hubflowv1.ExactlyOnce, stall: 2 * timeout, rnd: rand.New(rand.NewSource(7)),
		processed: map[string]int{}, keys: map[string]bool{}}
	srv := httptest.NewServer(ep)
	t.Cleanup(srv.Close)
	c := testkube.Consumer(ns, "webhook", "orders")
	c.Spec.Push = &hubflowv1.PushEndpoint{URL: srv.URL, Timeout: &metav1.Duration{Duration: timeout}, Concurrency: ptr(int32(8))}
	if sem != hubflowv1.AtMostOnce {
		c.Spec.AckWait = &metav1.Duration{Duration: 2 * time.Second}
		c.Spec.MaxDeliver = ptr(int32(100))
		c.Spec.Backoff = []metav1.Duration{{Duration: time.Second}}
	}
	testkube.CreateBound(t, k8s, c)
	stop := startPusher(t)
	js := testnats.Connect(t, hubNATS.URL())
	for i := 0; i < pushMessages; i++ {
		m := nats.NewMsg(ns + ".orders")
		m.Data = []byte(fmt.Sprintf("m-%05d", i))
		m.Header.Set(nats.MsgIdHdr, string(m.Data))
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	stream := semantic.StreamName(ns, "orders")
	testkube.Eventually(t, 60*time.Second, func() error {
		cons, err := js.Consumer(ctx, stream, c.Status.DurableName)
		if err != nil {
			return err
		}
		ci := cons.CachedInfo()
		if ci.NumPending != 0 || ci.NumAckPending != 0 {
			return fmt.Errorf("pending %d, ack pending %d", ci.NumPending, ci.NumAckPending)
		}
		return nil
	})
	stop() // waits for the pushes in flight to be settled
	processed, calls := ep.counts()
	lost, twice := 0, 0
	for i := 0; i < pushMessages; i++ {
		switch n := processed[fmt.Sprintf("m-%05d", i)]; {
		case n == 0:
			lost++
		case n > 1:
			twice++
		}
	}
	t.Logf("%s: %d messages, %d endpoint calls; processed: %d lost, %d processed twice", sem, pushMessages, calls, lost, twice)
	if sem != hubflowv1.AtMostOnce && lost > 0 {
		t.Errorf("%s lost %d of %d messages", sem, lost, pushMessages)
	}
	if sem != hubflowv1.AtLeastOnce && twice > 0 {
		t.Errorf("%s processed %d of %d messages twice", sem, twice, pushMessages)
	}
}

// startPusher runs a push deliverer like a gateway replica does; the
// returned stop waits for its requests in flight to be settled.
func startPusher(t testing.TB) func() {
	t.Helper()
	nc, err := nats.Connect(hubNATS.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	p := &gateway.Pusher{Reader: k8s, NATS: nc, Log: logr.Discard(), Interval: 200 * time.Millisecond, Registry: prometheus.NewRegistry()}
	pctx, cancel := contextWithCancel()
	done := make(chan struct{})
	go func() { _ = p.Run(pctx); close(done) }()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

func ptr[T any](v T) *T { return &v }
