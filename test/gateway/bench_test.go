package gateway_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/internal/gateway"
	"github.com/hubflow/hubflow/internal/semantic"
	"github.com/hubflow/hubflow/internal/testgateway"
	"github.com/hubflow/hubflow/internal/testkube"
	"github.com/hubflow/hubflow/internal/testnats"
	"github.com/hubflow/hubflow/pkg/binding"
	"github.com/hubflow/hubflow/pkg/hubflow"
)

// The gateway's cost is shown against the Go client on the same hub, in
// the same process and run, so that the figure is a ratio a noisy machine
// does not move much:
//
//	make bench-gateway                   # HUBFLOW_GATEWAY_BENCH_N messages per case (2000)
//
// Ingest: c HTTP clients, each posting one message and waiting for its
// answer, against c goroutines each calling pkg/hubflow's Producer.Publish.
// Push: a Consumer pushed to a local endpoint that answers 200 at once, with
// spec.push.concurrency c, against pkg/hubflow's Consumer.Run with
// WithConcurrency(c) on a second durable of the same stream.

var benchSemantics = []hubflowv1.DeliverySemantic{hubflowv1.AtMostOnce, hubflowv1.AtLeastOnce, hubflowv1.ExactlyOnce}

var benchConcurrency = []int{1, 16}

func benchMessages(b *testing.B) int {
	n := 2000
	if v := os.Getenv("HUBFLOW_GATEWAY_BENCH_N"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			b.Fatalf("HUBFLOW_GATEWAY_BENCH_N=%q: want a positive number", v)
		}
	}
	return n
}

func BenchmarkIngest(b *testing.B) {
	n := benchMessages(b)
	for _, sem := range benchSemantics {
		for _, c := range benchConcurrency {
			b.Run(fmt.Sprintf("%s/c=%d", sem, c), func(b *testing.B) {
				ns := testkube.Namespace(b, k8s)
				flow(b, ns, "orders", sem)
				tok := token(b, ns, "checkout")
				g := cachedGateway(b)
				srv := httptest.NewServer(g)
				b.Cleanup(srv.Close)
				url := srv.URL + fmt.Sprintf("/v1/namespaces/%s/topics/orders/messages", ns)
				httpc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: c}}
				p, err := hubflow.NewProducer(ctx, producerBinding(b, ns, "orders-http"))
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { _ = p.Close(context.Background()) })
				// One warm-up round each: connections, caches, the stream.
				for i := range c {
					mustIngest(b, httpc, url, tok, fmt.Sprintf("warm-http-%d", i), sem)
					if err := clientPublish(p, fmt.Sprintf("warm-client-%d", i), sem); err != nil {
						b.Fatal(err)
					}
				}
				for range b.N {
					viaClient := rate(n, c, func(i int) error {
						return clientPublish(p, fmt.Sprintf("client-%d", i), sem)
					}, func() error { return p.Flush(ctx) })
					viaHTTP := rate(n, c, func(i int) error {
						return ingest(httpc, url, tok, fmt.Sprintf("http-%d", i), sem)
					}, nil)
					report(b, viaHTTP, viaClient)
				}
				if sem != hubflowv1.AtMostOnce {
					if held := streamMessages(b, semantic.StreamName(ns, "orders")); held < uint64(2*n*b.N) {
						b.Errorf("the stream holds %d messages; want at least the %d acknowledged", held, 2*n*b.N)
					}
				}
			})
		}
	}
}

func BenchmarkPush(b *testing.B) {
	n := benchMessages(b)
	for _, sem := range benchSemantics {
		for _, c := range benchConcurrency {
			b.Run(fmt.Sprintf("%s/c=%d", sem, c), func(b *testing.B) {
				for range b.N {
					viaPush, viaClient := pushRound(b, sem, c, n)
					report(b, viaPush, viaClient)
				}
			})
		}
	}
}

// pushRound fills a new Topic with n messages, then has them read by a
// pkg/hubflow Consumer and pushed to a local endpoint, each through its own
// durable, and returns both rates in messages per second.
func pushRound(b *testing.B, sem hubflowv1.DeliverySemantic, c, n int) (viaPush, viaClient float64) {
	ns := testkube.Namespace(b, k8s)
	flow(b, ns, "orders", sem)
	js := testnats.Connect(b, hubNATS.URL())
	var acks []jetstream.PubAckFuture
	for i := range n {
		m := nats.NewMsg(ns + ".orders")
		m.Data = []byte(fmt.Sprintf("m-%06d", i))
		m.Header.Set(nats.MsgIdHdr, string(m.Data))
		f, err := js.PublishMsgAsync(m)
		if err != nil {
			b.Fatal(err)
		}
		acks = append(acks, f)
	}
	for _, f := range acks {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			b.Fatal(err)
		case <-time.After(30 * time.Second):
			b.Fatal("no acknowledgement in 30s while filling the stream")
		}
	}

	reader := testkube.Consumer(ns, "reader", "orders")
	testkube.CreateBound(b, k8s, reader)
	cons, err := hubflow.NewConsumer(ctx, consumerBinding(b, reader), hubflow.WithConcurrency(c))
	if err != nil {
		b.Fatal(err)
	}
	var read atomic.Int64
	runCtx, stop := context.WithCancel(ctx)
	start := time.Now()
	err = cons.Run(runCtx, func(context.Context, *hubflow.Delivery) error {
		if read.Add(1) == int64(n) {
			stop()
		}
		return nil
	})
	viaClient = float64(n) / time.Since(start).Seconds()
	stop()
	if err != nil {
		b.Fatal(err)
	}
	if err := cons.Close(ctx); err != nil {
		b.Logf("closing the reader: %v", err)
	}

	ep := &countingEndpoint{want: int64(n), all: make(chan struct{})}
	srv := httptest.NewServer(ep)
	b.Cleanup(srv.Close)
	webhook := testkube.Consumer(ns, "webhook", "orders")
	webhook.Spec.Push = &hubflowv1.PushEndpoint{URL: srv.URL, Concurrency: ptr(int32(c))}
	testkube.CreateBound(b, k8s, webhook)
	start = time.Now()
	stopPusher := startPusher(b)
	select {
	case <-ep.all:
	case <-time.After(5 * time.Minute):
		b.Fatalf("the endpoint got %d of %d pushes in 5 minutes", ep.seen.Load(), n)
	}
	viaPush = float64(n) / time.Since(start).Seconds()
	stopPusher()
	return viaPush, viaClient
}

// cachedGateway is a gateway replica as cmd/gateway builds one: Topics and
// Producers read from an informer cache, TokenReviews cached.
func cachedGateway(b *testing.B) *gateway.Gateway {
	b.Helper()
	cctx, cancel := context.WithCancel(ctx)
	b.Cleanup(cancel)
	objects, err := gateway.StartCache(cctx, hubEnv.Config, hubEnv.Scheme)
	if err != nil {
		b.Fatal(err)
	}
	g, _ := gatewayReading(b, objects)
	return g
}

// countingEndpoint answers 200 at once and closes all when it has seen
// want requests.
type countingEndpoint struct {
	want int64
	seen atomic.Int64
	all  chan struct{}
	once sync.Once
}

func (e *countingEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	if e.seen.Add(1) == e.want {
		e.once.Do(func() { close(e.all) })
	}
}

// rate runs do(0..n-1) on c goroutines, then finish if given (an
// AtMostOnce Publish returns before its message leaves: Flush waits for
// it), and returns the messages per second.
func rate(n, c int, do func(i int) error, finish func() error) float64 {
	next := atomic.Int64{}
	var wg sync.WaitGroup
	var failed atomic.Int64
	start := time.Now()
	for range c {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				if do(i) != nil {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if finish != nil && finish() != nil {
		failed.Add(1)
	}
	if failed.Load() > 0 {
		return 0
	}
	return float64(n) / time.Since(start).Seconds()
}

// report prints the gateway's rate, the Go client's and their ratio.
func report(b *testing.B, viaGateway, viaClient float64) {
	b.Helper()
	if viaGateway == 0 || viaClient == 0 {
		b.Fatalf("a call failed (gateway %.0f msgs/s, client %.0f msgs/s)", viaGateway, viaClient)
	}
	b.ReportMetric(viaGateway, "gateway-msgs/s")
	b.ReportMetric(viaClient, "client-msgs/s")
	b.ReportMetric(viaGateway/viaClient, "gateway/client")
	b.ReportMetric(0, "ns/op") // one op is a whole round: its time says nothing
}

func ingest(c *http.Client, url, tok, id string, sem hubflowv1.DeliverySemantic) error {
	code, err := testgateway.Publish(c, url, tok, id, sem)
	if err == nil && code >= 300 {
		err = fmt.Errorf("%s: HTTP %d", id, code)
	}
	return err
}

func mustIngest(b *testing.B, c *http.Client, url, tok, id string, sem hubflowv1.DeliverySemantic) {
	b.Helper()
	if err := ingest(c, url, tok, id, sem); err != nil {
		b.Fatal(err)
	}
}

// clientPublish publishes as the HTTP clients do: ExactlyOnce with the id
// as its idempotency key, the others without one.
func clientPublish(p *hubflow.Producer, id string, sem hubflowv1.DeliverySemantic) error {
	m := hubflow.Msg{Data: []byte(id)}
	if sem == hubflowv1.ExactlyOnce {
		m.ID = id
	}
	_, err := p.Publish(ctx, m)
	return err
}

// producerBinding is the binding the manager wrote for Producer ns/name.
func producerBinding(b *testing.B, ns, name string) binding.Binding {
	b.Helper()
	var p hubflowv1.Producer
	testkube.Eventually(b, 30*time.Second, func() error {
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &p); err != nil {
			return err
		}
		if p.Status.Binding == nil {
			return fmt.Errorf("producer %s/%s has no binding yet", ns, name)
		}
		return nil
	})
	return readBinding(b, ns, p.Status.Binding.Name)
}

// consumerBinding is the binding the manager wrote for cons.
func consumerBinding(b *testing.B, cons *hubflowv1.Consumer) binding.Binding {
	b.Helper()
	testkube.Eventually(b, 30*time.Second, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(cons), cons); err != nil {
			return err
		}
		if !isReady(cons.Status.Conditions) || cons.Status.Binding == nil {
			return fmt.Errorf("consumer %s/%s not Ready with a binding: %v", cons.Namespace, cons.Name, cons.Status.Conditions)
		}
		return nil
	})
	return readBinding(b, cons.Namespace, cons.Status.Binding.Name)
}

func readBinding(b *testing.B, ns, secret string) binding.Binding {
	b.Helper()
	var s corev1.Secret
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: secret}, &s); err != nil {
		b.Fatal(err)
	}
	bd, err := binding.Decode(s.Data)
	if err != nil {
		b.Fatal(err)
	}
	return bd
}

func streamMessages(b *testing.B, stream string) uint64 {
	b.Helper()
	s, err := testnats.Connect(b, hubNATS.URL()).Stream(ctx, stream)
	if err != nil {
		b.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		b.Fatal(err)
	}
	return info.State.Msgs
}
