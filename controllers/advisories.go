package controllers

import (
	"context"
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

// advisoryWatch turns the server's stream and consumer advisories into
// reconciles of the objects they concern, so an out-of-band deletion or
// edit is repaired within seconds instead of at the next resync. After a
// reconnect it reconciles everything, since advisories sent while the
// connection was down are lost.
type advisoryWatch struct {
	nc       *nats.Conn
	client   client.Reader
	triggers triggers
}

// NeedLeaderElection: only the leader repairs.
func (w *advisoryWatch) NeedLeaderElection() bool { return true }

func (w *advisoryWatch) Start(ctx context.Context) error {
	log := ctrl.LoggerFrom(ctx).WithName("advisories")
	advisories := make(chan hub.Advisory, 1024)
	stop, err := hub.WatchAdvisories(w.nc, func(a hub.Advisory) {
		select {
		case advisories <- a:
		default: // full: the resync backstop will catch it
		}
	})
	if err != nil {
		return err
	}
	defer stop()

	// Reconnects are read off the connection's counter rather than a
	// handler, so the connection's own logging handlers stay in place.
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	reconnects := w.nc.Stats().Reconnects
	for {
		select {
		case <-ctx.Done():
			return nil
		case a := <-advisories:
			log.V(1).Info("advisory", "kind", a.Kind, "stream", a.Stream, "consumer", a.Consumer)
			w.enqueue(ctx, a)
		case <-tick.C:
			if n := w.nc.Stats().Reconnects; n != reconnects && w.nc.IsConnected() {
				reconnects = n
				log.Info("NATS connection restored; reconciling every object")
				w.enqueueAll(ctx)
			}
		}
	}
}

func (w *advisoryWatch) enqueue(ctx context.Context, a hub.Advisory) {
	switch a.Kind {
	case hub.StreamDeleted, hub.StreamUpdated:
		var topics hubflowv1.TopicList
		if err := w.client.List(ctx, &topics, client.MatchingFields{streamIndex: a.Stream}); err != nil {
			return
		}
		for i := range topics.Items {
			send(ctx, w.triggers.topics, &topics.Items[i])
		}
	case hub.ConsumerDeleted:
		var consumers hubflowv1.ConsumerList
		if err := w.client.List(ctx, &consumers, client.MatchingFields{streamIndex: consumerKey(a.Stream, a.Consumer)}); err != nil {
			return
		}
		for i := range consumers.Items {
			send(ctx, w.triggers.consumers, &consumers.Items[i])
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

func send(ctx context.Context, ch chan<- event.GenericEvent, obj client.Object) {
	select {
	case ch <- event.GenericEvent{Object: obj}:
	case <-ctx.Done():
	case <-time.After(time.Minute): // the controller is stuck; the resync will do
	}
}
