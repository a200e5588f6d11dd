package faults

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/hubflow/hubflow/internal/testdiag"
	"github.com/hubflow/hubflow/internal/testnats"
	"github.com/hubflow/hubflow/pkg/hubflow"
)

// flowBudget is how long one flow may take. A flow takes seconds; the
// budget is for a loaded machine, and running out of it means a party
// stopped making progress.
const flowBudget = 5 * time.Minute

// errOutOfTime is the cause a flow's context ends with when the flow ran
// out of its budget; the watch has printed what everyone was waiting for.
var errOutOfTime = errors.New("the flow ran out of time (see the dump above)")

// watch is what one flow is doing, kept up to date by its parties (the
// test's own goroutine publishing and checking, the producer, the consumer
// instances, the fault injector), so that a flow that runs out of time says
// what each party was waiting for instead of just "deadline exceeded".
type watch struct {
	name    string
	started time.Time
	cluster *testnats.Cluster
	stream  string
	durable string
	account string // the JetStream account of the flow

	phase     atomic.Pointer[string] // the test goroutine's current step
	producer  atomic.Pointer[hubflow.Producer]
	published atomic.Int64 // messages handed to the producer so far
	futures   []atomic.Pointer[hubflow.Future]
	acked     []atomic.Bool
	injector  atomic.Pointer[injector]
	consumer  atomic.Pointer[consumerParty]
	extra     []func() string // case-specific parties
	led       *ledger
}

// consumerParty is the consumer instance running now.
type consumerParty struct {
	name     string
	c        *hubflow.Consumer // nil while it is being created
	since    time.Time
	instance int
	lastErr  string // why the last NewConsumer failed, if it did
	// The last message its handler saw, and when.
	lastMsg  atomic.Int64
	lastSeen atomic.Int64 // unix nanoseconds, 0 before the first
}

func newWatch(name string, cluster *testnats.Cluster, stream, durable string, n int, led *ledger) *watch {
	w := &watch{
		name: name, started: time.Now(), cluster: cluster, stream: stream, durable: durable, account: account,
		futures: make([]atomic.Pointer[hubflow.Future], n), acked: make([]atomic.Bool, n), led: led,
	}
	w.at("starting")
	return w
}

// at records the test goroutine's current step.
func (w *watch) at(phase string) { w.phase.Store(&phase) }

// ackedList is the set of messages acknowledged to the producer so far.
func (w *watch) ackedList() []bool {
	out := make([]bool, len(w.acked))
	for i := range w.acked {
		out[i] = w.acked[i].Load()
	}
	return out
}

// guard gives the flow its budget: the returned context ends with
// errOutOfTime once the budget is spent, after the dump is logged while
// every party is still where it got stuck. The budget ends early enough
// for the dump to be printed before go test's own -timeout panics.
func (w *watch) guard(t *testing.T, parent context.Context, budget time.Duration) (context.Context, func()) {
	if d, ok := t.Deadline(); ok {
		budget = min(budget, time.Until(d)-30*time.Second)
	}
	ctx, cancel := context.WithCancelCause(parent)
	var once sync.Once
	stopped := make(chan struct{})
	dumped := make(chan struct{})
	timer := time.AfterFunc(budget, func() {
		defer close(dumped)
		select {
		case <-stopped:
			return
		default:
		}
		t.Errorf("%s: out of time after %s; what each party was waiting for:\n%s", w.name, budget, w.dump())
		cancel(errOutOfTime)
	})
	return ctx, func() {
		once.Do(func() {
			close(stopped)
			if !timer.Stop() {
				<-dumped // t.Errorf must not run after the test ended
			}
			cancel(context.Canceled)
		})
	}
}

// dump describes every party of the flow: the step the test is at, the
// producer's and the consumer's progress and connections, the hub's view
// of the stream and the durable from each node, and the goroutines of the
// client library and the test.
func (w *watch) dump() string {
	var b strings.Builder
	fmt.Fprintf(&b, "  test: %s (flow running for %s)\n", *w.phase.Load(), time.Since(w.started).Round(time.Millisecond))
	w.dumpProducer(&b)
	w.dumpConsumer(&b)
	if in := w.injector.Load(); in != nil {
		fmt.Fprintf(&b, "  fault injector: %s\n", in.status())
	}
	for _, f := range w.extra {
		fmt.Fprintf(&b, "  %s\n", f())
	}
	w.dumpHub(&b)
	fmt.Fprintf(&b, "  goroutines of the parties:\n%s", testdiag.Goroutines("hubflow/hubflow/", "nats.go/jetstream."))
	return b.String()
}

func (w *watch) dumpProducer(b *strings.Builder) {
	p := w.producer.Load()
	if p == nil {
		fmt.Fprintf(b, "  producer: none yet\n")
		return
	}
	st := p.Stats()
	fmt.Fprintf(b, "  producer: %d handed over; library: %d published, %d acked (%d duplicates), %d failed, %d outstanding, %d retries; connection %s\n",
		w.published.Load(), st.Published, st.Acked, st.Duplicates, st.Failed, st.Published-st.Acked-st.Failed, st.Retries, connState(p.Conn()))
	var open []string
	count := 0
	for i := range w.futures {
		f := w.futures[i].Load()
		if f == nil {
			continue
		}
		select {
		case <-f.Done():
		default:
			count++
			if len(open) < 10 {
				open = append(open, fmt.Sprint(i))
			}
		}
	}
	if count > 0 {
		fmt.Fprintf(b, "    %d futures unresolved, first messages: %s\n", count, strings.Join(open, ", "))
	}
}

func (w *watch) dumpConsumer(b *strings.Builder) {
	cp := w.consumer.Load()
	if cp == nil {
		fmt.Fprintf(b, "  consumer: none yet\n")
	} else {
		fmt.Fprintf(b, "  consumer %s (instance %d, since %s ago)", cp.name, cp.instance, time.Since(cp.since).Round(time.Millisecond))
		if cp.c == nil {
			fmt.Fprintf(b, ": being created; last failure: %s\n", cp.lastErr)
		} else {
			st := cp.c.Stats()
			fmt.Fprintf(b, ": %d delivered, %d processed, %d acked, %d ack failures, %d naked, %d skipped; connection %s\n",
				st.Delivered, st.Processed, st.Acked, st.AckFailures, st.Naked, st.Skipped, connState(cp.c.Conn()))
		}
		if seen := cp.lastSeen.Load(); seen != 0 {
			fmt.Fprintf(b, "    last handled message %d, %s ago\n", cp.lastMsg.Load(), time.Since(time.Unix(0, seen)).Round(time.Millisecond))
		} else {
			fmt.Fprintf(b, "    has handled nothing\n")
		}
	}
	c := w.led.snapshot()
	acked := w.ackedList()
	lost := w.led.lostList(acked, 10)
	fmt.Fprintf(b, "  ledger: %d handler runs, %d distinct, %d acknowledged to the producer but not processed yet (first: %v)\n",
		c.handled, c.distinct, w.led.lost(acked), lost)
}

func connState(nc *nats.Conn) string {
	if nc == nil {
		return "none"
	}
	st := nc.Stats()
	return fmt.Sprintf("%s to %q (%d reconnects, last error %v)", nc.Status(), nc.ConnectedServerName(), st.Reconnects, nc.LastError())
}

// dumpHub asks every node for its own view (no JetStream API request, which
// may be what is stuck): is it running, does it lead the meta group, the
// stream, the durable, and what do the stream and the durable hold there.
func (w *watch) dumpHub(b *strings.Builder) {
	fmt.Fprintf(b, "  hub (each node's own view):\n")
	for i, n := range w.cluster.Nodes {
		s := n.Server()
		if s == nil {
			fmt.Fprintf(b, "    node %d: stopped\n", i)
			continue
		}
		var roles []string
		if s.JetStreamIsLeader() {
			roles = append(roles, "meta leader")
		}
		if s.JetStreamIsStreamLeader(w.account, w.stream) {
			roles = append(roles, "stream leader")
		}
		if s.JetStreamIsConsumerLeader(w.account, w.stream, w.durable) {
			roles = append(roles, "durable leader")
		}
		fmt.Fprintf(b, "    node %d %s: running, %s\n", i, s.Name(), orNone(roles, "leads nothing"))
		acc, err := s.JszAccount(&server.JSzOptions{Account: w.account, Streams: true, Consumer: true})
		if err != nil {
			fmt.Fprintf(b, "      jsz: %v\n", err)
			continue
		}
		for _, sd := range acc.Streams {
			if sd.Name != w.stream {
				continue
			}
			fmt.Fprintf(b, "      stream: %d msgs, seq %d..%d, leader %s\n", sd.State.Msgs, sd.State.FirstSeq, sd.State.LastSeq, clusterLine(sd.Cluster))
			for _, ci := range sd.Consumer {
				if ci.Name != w.durable {
					continue
				}
				fmt.Fprintf(b, "      durable: pending %d, ack pending %d, redelivered %d, waiting pulls %d, delivered %d, ack floor %d, leader %s\n",
					ci.NumPending, ci.NumAckPending, ci.NumRedelivered, ci.NumWaiting, ci.Delivered.Stream, ci.AckFloor.Stream, clusterLine(ci.Cluster))
			}
		}
		if cz, err := s.Connz(&server.ConnzOptions{Subscriptions: false}); err == nil {
			var names []string
			for _, c := range cz.Conns {
				if strings.HasPrefix(c.Name, "faults-") {
					names = append(names, fmt.Sprintf("%s (pending %dB, %d subs)", c.Name, c.Pending, c.NumSubs))
				}
			}
			fmt.Fprintf(b, "      clients: %s\n", orNone(names, "none of the flow's"))
		}
	}
}

func clusterLine(ci *server.ClusterInfo) string {
	if ci == nil {
		return "unknown"
	}
	var peers []string
	for _, p := range ci.Replicas {
		state := "current"
		switch {
		case p.Offline:
			state = "offline"
		case !p.Current:
			state = fmt.Sprintf("behind by %d", p.Lag)
		}
		peers = append(peers, fmt.Sprintf("%s %s, seen %s ago", p.Name, state, p.Active.Round(time.Millisecond)))
	}
	return fmt.Sprintf("%q; replicas: %s", ci.Leader, orNone(peers, "none listed"))
}

func orNone(list []string, none string) string {
	if len(list) == 0 {
		return none
	}
	return strings.Join(list, "; ")
}
