package faults

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/internal/testnats"
	"github.com/hubflow/hubflow/pkg/hubflow"
)

// The long-outage cases run one flow on a single-node hub (an outage is the
// whole hub unreachable): publishers call Publish at a steady pace from
// several goroutines, as a service's request handlers do, while a consumer
// instance processes into a ledger; the case's fault runs meanwhile. At the
// end every message is accounted for by what its Publish call returned,
// what the stream holds and what the ledger processed.

// outcome is what one Publish call told its caller.
type outcome uint32

const (
	notCalled    outcome = iota
	acked                // returned an Ack
	notStored            // an error saying the message was not stored
	unknown              // an error saying the outcome is unknown
	unclassified         // an error saying neither
)

func (o outcome) String() string {
	return [...]string{"not published", "acknowledged", "not stored", "outcome unknown", "UNCLASSIFIED"}[o]
}

// publishers are the callers of Publish.
const publishers = 8

// publishPace is how long each publisher waits between its calls.
const publishPace = 10 * time.Millisecond

// longFlow is one running case.
type longFlow struct {
	t   *testing.T
	f   *flow
	hub *testnats.Cluster
	js  jetstream.JetStream
	w   *watch
	led *ledger
	ctx context.Context

	n        int
	outcomes []atomic.Uint32
	ackedAt  []atomic.Int64 // unix nanoseconds Publish returned an Ack
	calledAt []atomic.Int64 // unix nanoseconds Publish was called
	examples sync.Map       // outcome → first error text

	proxy            *netProxy // the network between the clients and the hub
	downFrom, downTo time.Time // the latest outage

	p             *hubflow.Producer
	next          atomic.Int64
	stopPublish   chan struct{}
	publishing    sync.WaitGroup
	stopConsumers context.CancelFunc
	consumed      chan consumerResult
}

// startLongFlow creates f's stream and durable, starts a consumer instance
// and the publishers, and returns once the first messages are processed:
// the flow is running when the case's fault comes.
func startLongFlow(t *testing.T, hub *testnats.Cluster, proxy *netProxy, js jetstream.JetStream, f *flow, account string, n int) *longFlow {
	t.Helper()
	led := newLedger(n)
	w := newWatch(t.Name(), hub, f.stream.Name, f.durable.Durable, n, led)
	w.account = account
	ctx, stop := w.guard(t, context.Background(), envDuration("HUBFLOW_FAULTS_BUDGET", 2*time.Minute))
	t.Cleanup(stop)
	lf := &longFlow{
		t: t, f: f, hub: hub, proxy: proxy, js: js, w: w, led: led, ctx: ctx, n: n,
		outcomes: make([]atomic.Uint32, n), ackedAt: make([]atomic.Int64, n), calledAt: make([]atomic.Int64, n),
		stopPublish: make(chan struct{}), consumed: make(chan consumerResult, 1),
	}
	w.at("creating the stream and the durable")
	if err := f.create(ctx, js, hub); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelError}))
	consCtx, stopConsumers := context.WithCancel(ctx)
	lf.stopConsumers = stopConsumers
	go func() {
		lf.consumed <- runConsumers(consCtx, f, led, nil, filepath.Join(t.TempDir(), "processed"), log, w)
	}()
	t.Cleanup(func() {
		stopConsumers()
		if lf.consumed != nil {
			<-lf.consumed
		}
	})
	w.at("connecting the producer")
	p, err := hubflow.NewProducer(ctx, f.producer, append(f.producerOpts, hubflow.WithName("faults-producer"), hubflow.WithLogger(log))...)
	if err != nil {
		t.Fatal(err)
	}
	lf.p = p
	w.producer.Store(p)
	t.Cleanup(func() { p.Close(context.Background()) })
	w.at("publishing")
	for range publishers {
		lf.publishing.Go(lf.publish)
	}
	w.at("waiting for the first messages to be processed")
	for led.snapshot().distinct < 20 {
		select {
		case <-ctx.Done():
			t.Fatalf("nothing processed before the fault: %v", context.Cause(ctx))
		case <-time.After(20 * time.Millisecond):
		}
	}
	return lf
}

// publish is one publisher: Publish, record what it said, pause, again.
func (lf *longFlow) publish() {
	for {
		select {
		case <-lf.stopPublish:
			return
		case <-lf.ctx.Done():
			return
		default:
		}
		i := int(lf.next.Add(1) - 1)
		if i >= lf.n {
			return
		}
		m := hubflow.Msg{Data: strconv.AppendInt(nil, int64(i), 10)}
		if lf.f.sem == hubflowv1.ExactlyOnce && i%2 == 0 {
			m.ID = fmt.Sprint("order-", i) // the caller's key; odd numbers get a generated one
		}
		lf.calledAt[i].Store(time.Now().UnixNano())
		_, err := lf.p.Publish(lf.ctx, m)
		o := acked
		if err != nil {
			o = classify(err)
			lf.examples.LoadOrStore(o, err.Error())
		} else {
			lf.ackedAt[i].Store(time.Now().UnixNano())
			lf.w.acked[i].Store(true)
		}
		lf.outcomes[i].Store(uint32(o))
		lf.w.published.Store(lf.next.Load())
		time.Sleep(publishPace)
	}
}

// longResult is the accounting of a finished case.
type longResult struct {
	byOutcome   map[outcome]int
	stream      streamAudit
	ledger      ledgerCounts
	consumer    hubflow.ConsumerStats
	instances   int
	published   int
	lost        []int // acknowledged, never processed
	lies        []int // said "not stored", yet stored
	unknownHeld int   // "outcome unknown" that the stream holds
}

// finish stops the publishers, lets the consumer side settle, stops it and
// reads the stream back.
func (lf *longFlow) finish() longResult {
	t := lf.t
	t.Helper()
	lf.w.at("stopping the publishers")
	close(lf.stopPublish)
	lf.publishing.Wait()
	lf.w.at("closing the producer")
	if err := lf.p.Close(lf.ctx); err != nil {
		t.Errorf("closing the producer: %v", err)
	}
	acked := lf.w.ackedList()
	lf.w.at("waiting for the consumer side to settle")
	waitQuiet(lf.ctx, t, lf.js, lf.f, lf.led)
	lf.w.at("stopping the consumers")
	lf.stopConsumers()
	res := <-lf.consumed
	lf.consumed = nil
	lf.w.at("reading the stream back")
	r := longResult{byOutcome: map[outcome]int{}, consumer: res.stats, instances: res.instances, ledger: lf.led.snapshot()}
	for _, err := range res.errs {
		t.Errorf("consumer side: %v", err)
	}
	var err error
	if r.stream, err = auditStream(lf.ctx, lf.js, lf.f.stream.Name, lf.n); err != nil {
		t.Fatalf("reading the stream back: %v", err)
	}
	r.published = int(min(lf.next.Load(), int64(lf.n)))
	for i := range r.published {
		o := outcome(lf.outcomes[i].Load())
		r.byOutcome[o]++
		switch {
		case acked[i] && lf.led.count(i) == 0:
			r.lost = append(r.lost, i)
		case o == notStored && r.stream.copies[i] > 0:
			r.lies = append(r.lies, i)
		case o == unknown && r.stream.copies[i] > 0:
			r.unknownHeld++
		}
	}
	return r
}

func (r longResult) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "  publish calls: %d:", r.published)
	for o := acked; o <= unclassified; o++ {
		fmt.Fprintf(&b, " %d %s;", r.byOutcome[o], o)
	}
	fmt.Fprintf(&b, " of the unknown, %d stored\n", r.unknownHeld)
	fmt.Fprintf(&b, "  stream (plain nats.go): %d stored, %d distinct, %d STORED TWICE\n", r.stream.stored, r.stream.distinct, r.stream.storedTwice)
	fmt.Fprintf(&b, "  consumer: %d instance(s), %d deliveries, %d skipped by the dedup record\n", r.instances, r.consumer.Delivered, r.consumer.Skipped)
	fmt.Fprintf(&b, "  ledger: %d distinct processed, %d LOST (acknowledged, never processed), %d PROCESSED TWICE, %d said not stored but STORED",
		r.ledger.distinct, len(r.lost), r.ledger.twice, len(r.lies))
	return b.String()
}

// checkPromise fails t where the semantic's promise or the error contract
// does not hold: no acknowledged message lost (acknowledging semantics),
// nothing stored or processed twice (ExactlyOnce), nothing processed twice
// (AtMostOnce), every Publish error either "not stored" (and then not
// stored) or "outcome unknown".
func (lf *longFlow) checkPromise(r longResult) {
	t := lf.t
	t.Helper()
	if lf.f.sem != hubflowv1.AtMostOnce {
		if len(r.lost) > 0 {
			t.Errorf("%d acknowledged messages never processed, first %v", len(r.lost), first(r.lost, 10))
		}
		if n := r.byOutcome[unclassified]; n > 0 {
			ex, _ := lf.examples.Load(unclassified)
			t.Errorf("%d Publish errors say neither \"not stored\" nor \"outcome unknown\", e.g. %v", n, ex)
		}
		if len(r.lies) > 0 {
			t.Errorf("%d messages whose Publish said \"not stored\" are stored, first %v", len(r.lies), first(r.lies, 10))
		}
	}
	switch lf.f.sem {
	case hubflowv1.ExactlyOnce:
		if r.stream.storedTwice > 0 || r.ledger.twice > 0 {
			t.Errorf("ExactlyOnce broke its promise: %d messages stored twice, %d processed twice", r.stream.storedTwice, r.ledger.twice)
		}
	case hubflowv1.AtMostOnce:
		if r.ledger.twice > 0 {
			t.Errorf("AtMostOnce broke its promise: %d messages processed twice", r.ledger.twice)
		}
	}
}

func first(list []int, n int) []int { return list[:min(n, len(list))] }

// waitQuiet returns once the durable has nothing left to deliver or to be
// acknowledged and the ledger has not moved for a second: unlike
// waitSettled it does not wait for every acknowledged message, since a case
// may lose some by design (a deleted stream) or by a bug the checks report.
func waitQuiet(ctx context.Context, t *testing.T, js jetstream.JetStream, f *flow, led *ledger) {
	t.Helper()
	waitSettled(ctx, t, js, f, led, nil)
}

// outage makes the hub unreachable for d. First the network goes deaf: the
// hub receives and stores what the producers send, its acknowledgements are
// lost, until it has stored deafStored more messages; then every connection
// is cut and none is accepted for d; then the network heals. With
// deafStored 0 the hub is cut off at once.
func (lf *longFlow) outage(d time.Duration, deafStored uint64) {
	t := lf.t
	t.Helper()
	before := lf.storedNow()
	lf.w.at(fmt.Sprintf("network deaf until the stream holds %d messages more than %d", deafStored, before))
	if deafStored > 0 {
		lf.proxy.set(deafen)
	}
	for lf.storedNow() < before+deafStored {
		select {
		case <-lf.ctx.Done():
			t.Fatalf("the stream stored nothing while the network was deaf: %v", context.Cause(lf.ctx))
		case <-time.After(10 * time.Millisecond):
		}
	}
	lf.w.at(fmt.Sprintf("hub unreachable for %s", d))
	lf.downFrom = time.Now()
	lf.proxy.set(partition)
	time.Sleep(d) // the outage itself: what is under test is how long the hub is away
	lf.proxy.set(pass)
	lf.downTo = time.Now()
	lf.w.at("publishing after the outage")
}

// storedNow is how many messages the stream holds, asked over the test's
// own connection, which does not go through the proxy.
func (lf *longFlow) storedNow() uint64 {
	ctx, cancel := context.WithTimeout(lf.ctx, 2*time.Second)
	defer cancel()
	s, err := lf.js.Stream(ctx, lf.f.stream.Name)
	if err != nil {
		return 0
	}
	return s.CachedInfo().State.Msgs
}

// callsDuringOutage counts the Publish calls made while the hub was down.
func (lf *longFlow) callsDuringOutage() int {
	n := 0
	for i := range lf.calledAt {
		if at := lf.calledAt[i].Load(); at >= lf.downFrom.UnixNano() && at < lf.downTo.UnixNano() {
			n++
		}
	}
	return n
}

// awaitAcked waits until k messages published from now on are
// acknowledged (acknowledging semantics) or have returned (AtMostOnce).
func (lf *longFlow) awaitAcked(k int) {
	t := lf.t
	t.Helper()
	from := int(lf.next.Load())
	lf.w.at(fmt.Sprintf("waiting for %d messages from message %d on to be acknowledged", k, from))
	for {
		got := 0
		for i := from; i < min(int(lf.next.Load()), lf.n); i++ {
			o := outcome(lf.outcomes[i].Load())
			if o == acked || (lf.f.sem == hubflowv1.AtMostOnce && o != notCalled) {
				got++
			}
		}
		if got >= k {
			return
		}
		select {
		case <-lf.ctx.Done():
			t.Fatalf("%d of %d messages acknowledged after message %d: %v", got, k, from, context.Cause(lf.ctx))
		case <-time.After(20 * time.Millisecond):
		}
	}
}
