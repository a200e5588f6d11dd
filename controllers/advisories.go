package controllers

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/internal/hub"
)

// triggers feed reconcile requests that do not come from the API server:
// JetStream advisories and NATS reconnects.
type triggers struct {
	topics, consumers, producers chan event.GenericEvent
}

func newTriggers() triggers {
	return triggers{
		topics:    make(chan event.GenericEvent, 1024),
		consumers: make(chan event.GenericEvent, 1024),
		producers: make(chan event.GenericEvent, 1024),
	}
}

// advisoryWatch turns the server's advisories into reconciles of the
// objects they concern, so any out-of-band change is repaired within
// milliseconds instead of at the next resync: the stream and consumer
// action advisories, and the API audit advisory, the only report of a
// consumer edit and a second report of every deletion (the server
// sometimes drops STREAM.DELETED). Nothing reported is lost on the way:
// reports are merged per object while the watch is busy, never dropped,
// and whenever reports may have been lost before reaching it (a reconnect,
// the client library discarding messages for a slow handler) it
// reconciles everything.
type advisoryWatch struct {
	nc       *nats.Conn
	client   client.Reader
	triggers triggers
}

// NeedLeaderElection: only the leader repairs.
func (w *advisoryWatch) NeedLeaderElection() bool { return true }

func (w *advisoryWatch) Start(ctx context.Context) error {
	log := ctrl.LoggerFrom(ctx).WithName("advisories")
	queue := newPendingSet(maxPending)
	watch, err := hub.WatchAdvisories(w.nc, func(a hub.Advisory) {
		if drop := testHooks.drop.Load(); drop != nil && (*drop)(a) {
			return
		}
		if t, ok := targetOf(a); ok {
			queue.add(t, a.Kind)
		}
	})
	if err != nil {
		return err
	}
	defer watch.Stop()

	// Reconnects are read off the connection's counter rather than a
	// handler, so the connection's own logging handlers stay in place.
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	reconnects, dropped := w.nc.Stats().Reconnects, 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-queue.ready:
			if hold := testHooks.hold.Load(); hold != nil {
				select {
				case <-*hold:
				case <-ctx.Done():
					return nil
				}
			}
			targets, overflow := queue.take()
			if overflow {
				log.Info("more objects changed at once than the watch tracks one by one; reconciling every object")
				w.enqueueAll(ctx)
				continue
			}
			for t, kind := range targets {
				log.V(1).Info("advisory", "kind", kind, "stream", t.stream, "consumer", t.consumer, "consumersOfStream", t.consumersOf)
				w.enqueue(ctx, t)
			}
		case <-tick.C:
			if n := w.nc.Stats().Reconnects; n != reconnects && w.nc.IsConnected() {
				reconnects = n
				log.Info("NATS connection restored; reconciling every object")
				w.enqueueAll(ctx)
			}
			if n := watch.Dropped(); n != dropped {
				dropped = n
				log.Info("advisories were discarded while the watch fell behind; reconciling every object", "discarded", n)
				w.enqueueAll(ctx)
			}
		}
	}
}

// target is what a report asks to reconcile: the Topic of a stream, the
// Consumer of a durable, or the Consumers of a stream's Topic.
type target struct {
	stream, consumer string
	consumersOf      bool
}

// targetOf maps a report to what must be reconciled. The manager's own
// calls need nothing, since it knows what it just did, with one exception:
// a stream it just (re)created has none of its durables yet. A Consumer
// that found the stream missing waits for its Topic, and the Topic's
// status (the StreamRecreated time, in seconds) need not change when the
// stream is recreated twice in one second: this wakes its Consumers
// whatever the status says.
func targetOf(a hub.Advisory) (target, bool) {
	switch {
	case a.Own && a.Kind == hub.StreamCreated:
		return target{stream: a.Stream, consumersOf: true}, true
	case a.Own:
		return target{}, false
	}
	return target{stream: a.Stream, consumer: a.Consumer}, true
}

func (w *advisoryWatch) enqueue(ctx context.Context, t target) {
	if t.consumer != "" {
		var consumers hubflowv1.ConsumerList
		if err := w.client.List(ctx, &consumers, client.MatchingFields{streamIndex: consumerKey(t.stream, t.consumer)}); err != nil {
			return
		}
		for i := range consumers.Items {
			send(ctx, w.triggers.consumers, &consumers.Items[i])
		}
		return
	}
	var topics hubflowv1.TopicList
	if err := w.client.List(ctx, &topics, client.MatchingFields{streamIndex: t.stream}); err != nil {
		return
	}
	for i := range topics.Items {
		topic := &topics.Items[i]
		if !t.consumersOf {
			send(ctx, w.triggers.topics, topic)
			continue
		}
		var consumers hubflowv1.ConsumerList
		if err := listRegistered(ctx, w.client, topic.Namespace, topic.Name, &consumers); err != nil {
			return
		}
		for j := range consumers.Items {
			send(ctx, w.triggers.consumers, &consumers.Items[j])
		}
	}
}

func (w *advisoryWatch) enqueueAll(ctx context.Context) {
	var topics hubflowv1.TopicList
	var consumers hubflowv1.ConsumerList
	var producers hubflowv1.ProducerList
	if w.client.List(ctx, &topics) == nil {
		for i := range topics.Items {
			send(ctx, w.triggers.topics, &topics.Items[i])
		}
	}
	if w.client.List(ctx, &consumers) == nil {
		for i := range consumers.Items {
			send(ctx, w.triggers.consumers, &consumers.Items[i])
		}
	}
	if w.client.List(ctx, &producers) == nil {
		for i := range producers.Items {
			send(ctx, w.triggers.producers, &producers.Items[i])
		}
	}
}

// send hands obj to its controller, waiting as long as it takes: the
// controller's source moves each event into its work queue at once, so a
// full channel only means a burst is being absorbed, and dropping the event
// would leave the change unrepaired until the resync.
func send(ctx context.Context, ch chan<- event.GenericEvent, obj client.Object) {
	select {
	case ch <- event.GenericEvent{Object: obj}:
	case <-ctx.Done():
	}
}

// maxPending bounds the objects tracked one by one between two passes of
// the watch; past it, the watch reconciles everything instead, so a flood
// of reports about distinct names (ephemeral consumers, say) cannot grow
// memory without bound, and nothing is lost either.
const maxPending = 10_000

// pendingSet holds what advisories asked for and the watch has not handled
// yet. The NATS callback adds to it without ever blocking or dropping;
// reports about the same target merge into one.
type pendingSet struct {
	mu       sync.Mutex
	set      map[target]hub.AdvisoryKind
	overflow bool
	limit    int
	// ready holds a token while the set is not empty.
	ready chan struct{}
}

func newPendingSet(limit int) *pendingSet {
	return &pendingSet{set: map[target]hub.AdvisoryKind{}, limit: limit, ready: make(chan struct{}, 1)}
}

// add records t; kind, the last report's, is kept for the log.
func (p *pendingSet) add(t target, kind hub.AdvisoryKind) {
	p.mu.Lock()
	if _, known := p.set[t]; !known && len(p.set) >= p.limit {
		p.overflow = true
	} else if !p.overflow {
		p.set[t] = kind
	}
	p.mu.Unlock()
	select {
	case p.ready <- struct{}{}:
	default: // a token is already waiting
	}
}

// take empties the set. overflow reports that more distinct targets were
// reported than it tracks: the caller must then reconcile everything.
func (p *pendingSet) take() (targets map[target]hub.AdvisoryKind, overflow bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	targets, overflow = p.set, p.overflow
	p.set, p.overflow = map[target]hub.AdvisoryKind{}, false
	return targets, overflow
}

// testHooks reproduce, in the controller suite, what a real server and a
// loaded manager do only sometimes: a dropped advisory, a watch that falls
// behind, an observer that has not looked yet. Never set outside tests
// (export_test.go).
var testHooks struct {
	// drop discards the advisories it reports true for.
	drop atomic.Pointer[func(hub.Advisory) bool]
	// hold stalls the watch before it handles what is pending, until closed.
	hold atomic.Pointer[chan struct{}]
	// observerPaused skips the observer's looks.
	observerPaused atomic.Bool
	// moverStopped stops the dead-letter mover, as a manager that is down.
	moverStopped atomic.Bool
	// afterDeadLetterPublish, when it returns true, ends a move after the
	// publish and before the acknowledgement, as a crash there would.
	afterDeadLetterPublish atomic.Pointer[func() bool]
}
