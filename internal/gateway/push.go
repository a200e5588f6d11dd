package gateway

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/go-logr/logr"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/internal/semantic"
	"github.com/hubflow/hubflow/pkg/binding"
	"github.com/hubflow/hubflow/pkg/pushsig"
)

// Defaults of a push endpoint.
const (
	DefaultPushTimeout     = 10 * time.Second
	DefaultPushConcurrency = 4
)

// Headers of a push request besides the message's own.
const (
	HeaderTopic    = "Hubflow-Topic"    // "<namespace>/<name>"
	HeaderConsumer = "Hubflow-Consumer" // "<namespace>/<name>"
	HeaderSubject  = "Hubflow-Subject"
	HeaderDelivery = "Hubflow-Delivery" // 1 on the first delivery
)

// Pusher delivers the messages of every Consumer with spec.push to its
// endpoint, keeping the Consumer's semantic. Every gateway replica runs
// one; replicas share each durable, as pods of a workload do.
type Pusher struct {
	Reader   client.Reader
	NATS     *nats.Conn
	HTTP     *http.Client
	Log      logr.Logger
	Interval time.Duration // how often the Consumers are read again
	Registry prometheus.Registerer
	// Secrets reads the signing Secrets (spec.push.signing) directly, so the
	// gateway caches no Secrets. Default Reader.
	Secrets client.Reader

	js         jetstream.JetStream
	deliveries *prometheus.CounterVec
	workers    map[client.ObjectKey]*pushWorker
	// waiting is why a push Consumer is not delivered to, logged once per change.
	waiting map[client.ObjectKey]string
}

// Run delivers until ctx ends, then waits for the requests in flight to
// be settled (acknowledged, redelivered or terminated): none is left half
// done.
func (p *Pusher) Run(ctx context.Context) error {
	js, err := jetstream.New(p.NATS)
	if err != nil {
		return err
	}
	p.js, p.workers, p.waiting = js, map[client.ObjectKey]*pushWorker{}, map[client.ObjectKey]string{}
	if p.Secrets == nil {
		p.Secrets = p.Reader
	}
	p.deliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hubflow_gateway_push_deliveries_total",
		Help: "Push deliveries, by namespace, Consumer and outcome (acked, redelivered, terminated, unacknowledged for AtMostOnce).",
	}, []string{"namespace", "consumer", "outcome"})
	if p.Registry != nil {
		if err := p.Registry.Register(p.deliveries); err != nil {
			return err
		}
	}
	if p.HTTP == nil {
		p.HTTP = &http.Client{}
	}
	if p.Interval <= 0 {
		p.Interval = 5 * time.Second
	}
	defer p.stopAll()
	tick := time.NewTicker(p.Interval)
	defer tick.Stop()
	for {
		p.sync(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// pushPlan is what a worker delivers with; a change restarts the worker.
type pushPlan struct {
	namespace, consumer, topic string
	stream, durable            string
	semantic                   hubflowv1.DeliverySemantic
	url                        string
	timeout                    time.Duration
	concurrency                int
	delays                     []time.Duration
	ackWait                    time.Duration
	// secret signs every request when not nil (spec.push.signing).
	secret []byte
}

// planOf compiles a Ready push Consumer into what delivering needs.
func planOf(t *hubflowv1.Topic, c *hubflowv1.Consumer) (pushPlan, error) {
	sem := hubflowv1.DeliverySemantic(c.Status.Semantic)
	cfg, err := semantic.Consumer(t, c, sem)
	if err != nil {
		return pushPlan{}, err
	}
	policy := semantic.ConsumerClientPolicy(sem, cfg)
	plan := pushPlan{namespace: c.Namespace, consumer: c.Name, topic: t.Name, stream: c.Status.StreamName, durable: c.Status.DurableName,
		semantic: sem, url: c.Spec.Push.URL, timeout: DefaultPushTimeout, concurrency: DefaultPushConcurrency,
		delays: policy.RedeliveryDelays, ackWait: policy.AckWait}
	if c.Spec.Push.Timeout != nil {
		plan.timeout = c.Spec.Push.Timeout.Duration
	}
	if plan.ackWait > 2*time.Second && plan.timeout > plan.ackWait-time.Second {
		plan.timeout = plan.ackWait - time.Second
	}
	if c.Spec.Push.Concurrency != nil {
		plan.concurrency = int(*c.Spec.Push.Concurrency)
	}
	if c.Spec.Push.Ordered {
		plan.concurrency = 1
	}
	return plan, nil
}

func (p *Pusher) sync(ctx context.Context) {
	var list hubflowv1.ConsumerList
	if err := p.Reader.List(ctx, &list); err != nil {
		p.Log.Error(err, "listing Consumers")
		return
	}
	want := map[client.ObjectKey]pushPlan{}
	for i := range list.Items {
		c := &list.Items[i]
		if c.Spec.Push == nil || !ready(c.Status.Conditions) || c.Status.DurableName == "" || !c.DeletionTimestamp.IsZero() {
			continue
		}
		var t hubflowv1.Topic
		if err := p.Reader.Get(ctx, client.ObjectKey{Namespace: c.Namespace, Name: c.Spec.TopicRef.Name}, &t); err != nil {
			continue
		}
		plan, err := planOf(&t, c)
		if err != nil {
			continue
		}
		key := client.ObjectKeyFromObject(c)
		if plan.secret, err = p.signingSecret(ctx, c); err != nil {
			// Nothing goes out unsigned: the messages wait in the stream.
			if p.waiting[key] != err.Error() {
				p.Log.Error(err, "not delivering until the signing secret can be read", "consumer", key)
				p.waiting[key] = err.Error()
			}
			continue
		}
		delete(p.waiting, key)
		want[key] = plan
	}
	for key, w := range p.workers {
		if plan, ok := want[key]; !ok || !equalPlans(plan, w.plan) {
			w.stop()
			delete(p.workers, key)
		}
	}
	for key, plan := range want {
		if _, ok := p.workers[key]; ok {
			continue
		}
		w, err := p.start(ctx, plan)
		if err != nil {
			p.Log.Error(err, "starting push delivery", "consumer", key)
			continue
		}
		p.workers[key] = w
	}
}

// signingSecret is the secret c's requests are signed with, nil when they
// are not signed.
func (p *Pusher) signingSecret(ctx context.Context, c *hubflowv1.Consumer) ([]byte, error) {
	if c.Spec.Push.Signing == nil {
		return nil, nil
	}
	ref := c.Spec.Push.Signing.SecretRef
	if ref.Key == "" {
		ref.Key = "secret"
	}
	var s corev1.Secret
	if err := p.Secrets.Get(ctx, client.ObjectKey{Namespace: c.Namespace, Name: ref.Name}, &s); err != nil {
		return nil, fmt.Errorf("spec.push.signing.secretRef: Secret %s/%s: %w", c.Namespace, ref.Name, err)
	}
	if len(s.Data[ref.Key]) == 0 {
		return nil, fmt.Errorf("spec.push.signing.secretRef: Secret %s/%s has no key %q", c.Namespace, ref.Name, ref.Key)
	}
	return s.Data[ref.Key], nil
}

func equalPlans(a, b pushPlan) bool {
	return a.namespace == b.namespace && a.consumer == b.consumer && a.topic == b.topic && a.stream == b.stream &&
		a.durable == b.durable && a.semantic == b.semantic && a.url == b.url && a.timeout == b.timeout &&
		a.concurrency == b.concurrency && a.ackWait == b.ackWait && fmt.Sprint(a.delays) == fmt.Sprint(b.delays) &&
		bytes.Equal(a.secret, b.secret)
}

func (p *Pusher) stopAll() {
	for key, w := range p.workers {
		w.stop()
		delete(p.workers, key)
	}
}

// pushWorker delivers one Consumer's messages.
type pushWorker struct {
	plan     pushPlan
	pusher   *Pusher
	consume  jetstream.ConsumeContext
	inFlight sync.WaitGroup
	slots    chan struct{}
	// settle is the context acknowledgements are sent with: it outlives
	// the pull, so a request in flight at shutdown is still settled.
	settle context.Context
}

func (p *Pusher) start(ctx context.Context, plan pushPlan) (*pushWorker, error) {
	cons, err := p.js.Consumer(ctx, plan.stream, plan.durable)
	if err != nil {
		return nil, err
	}
	w := &pushWorker{plan: plan, pusher: p, slots: make(chan struct{}, plan.concurrency), settle: context.WithoutCancel(ctx)}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		w.slots <- struct{}{}
		w.inFlight.Add(1)
		if plan.concurrency == 1 {
			w.deliver(m) // in order: the next waits for this one
			return
		}
		go w.deliver(m)
	}, jetstream.PullMaxMessages(max(plan.concurrency*2, 2)))
	if err != nil {
		return nil, err
	}
	w.consume = cc
	return w, nil
}

// stop ends the pull and waits for the deliveries in flight. Messages
// fetched and not yet sent are not acknowledged: the server hands them out
// again after the ack wait.
func (w *pushWorker) stop() {
	w.consume.Stop()
	w.inFlight.Wait()
}

func (w *pushWorker) deliver(m jetstream.Msg) {
	defer func() { <-w.slots; w.inFlight.Done() }()
	plan := w.plan
	meta, err := m.Metadata()
	if err != nil {
		return
	}
	key := binding.IdempotencyKey(m.Headers(), meta.Stream, meta.Sequence.Stream, meta.Timestamp)
	code, text, err := w.post(m, key, meta.NumDelivered)
	outcome := "acked"
	switch {
	case plan.semantic == hubflowv1.AtMostOnce:
		outcome = "unacknowledged" // AtMostOnce never redelivers
		if err != nil || code >= 300 {
			w.pusher.Log.V(1).Info("push failed; AtMostOnce does not redeliver", "consumer", plan.namespace+"/"+plan.consumer, "code", code, "error", fmt.Sprint(err))
		}
	case err == nil && code >= 200 && code < 300:
		if plan.semantic == hubflowv1.ExactlyOnce {
			actx, cancel := context.WithTimeout(w.settle, 5*time.Second)
			err = m.DoubleAck(actx)
			cancel()
		} else {
			err = m.Ack()
		}
		if err != nil {
			outcome = "ack lost"
		}
	case err == nil && code >= 400 && code < 500 && code != http.StatusRequestTimeout && code != http.StatusTooManyRequests:
		outcome = "terminated"
		_ = m.TermWithReason(fmt.Sprintf("endpoint %s answered %d %s", plan.url, code, text))
	default:
		outcome = "redelivered"
		_ = m.NakWithDelay(delay(plan, meta.NumDelivered))
	}
	w.pusher.deliveries.WithLabelValues(plan.namespace, plan.consumer, outcome).Inc()
}

// post sends one message; text is the start of the answer's body.
func (w *pushWorker) post(m jetstream.Msg, key string, delivery uint64) (int, string, error) {
	plan := w.plan
	ctx, cancel := context.WithTimeout(w.settle, plan.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, plan.url, bytes.NewReader(m.Data()))
	if err != nil {
		return 0, "", err
	}
	if plan.semantic == hubflowv1.AtMostOnce {
		// net/http replays a request that carries an Idempotency-Key and
		// has GetBody when a reused connection drops: a second delivery,
		// which AtMostOnce never makes. Without GetBody it is not replayed.
		req.GetBody = nil
	}
	for name, values := range m.Headers() {
		lower := strings.ToLower(name)
		switch {
		case strings.HasPrefix(lower, cePrefix), lower == "traceparent", lower == "tracestate", lower == "baggage":
			req.Header.Set(name, values[0])
		case lower == "content-type":
			req.Header.Set("Content-Type", values[0])
		}
	}
	req.Header.Set(IdempotencyKeyHeader, key)
	req.Header.Set(HeaderTopic, plan.namespace+"/"+plan.topic)
	req.Header.Set(HeaderConsumer, plan.namespace+"/"+plan.consumer)
	req.Header.Set(HeaderSubject, m.Subject())
	req.Header.Set(HeaderDelivery, strconv.FormatUint(delivery, 10))
	if plan.secret != nil {
		req.Header.Set(pushsig.Header, pushsig.Sign(plan.secret, time.Now(), key, m.Data()))
	}
	resp, err := w.pusher.HTTP.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, strings.TrimSpace(string(body)), nil
}

// delay is the wait before the next delivery of a message delivered n
// times: the Consumer's backoff, the last one repeating.
func delay(plan pushPlan, n uint64) time.Duration {
	if len(plan.delays) == 0 {
		return plan.ackWait
	}
	return plan.delays[min(int(max(n, 1))-1, len(plan.delays)-1)]
}
