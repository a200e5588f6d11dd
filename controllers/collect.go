package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/internal/hub"
	"github.com/hubflow/hubflow/internal/semantic"
)

// A Consumer carries no finalizer: its durable is collected after the
// Consumer is gone, by the owner metadata hubflow writes on every durable.
// That saves a write per Consumer on the way in and lets a deletion finish
// at once. Two paths collect: the Consumer's delete event (the common one,
// within moments), and the observer's sweep, which finds what a delete event
// missed (the manager was down, or not the leader, when it came). Both delete
// only a durable whose metadata names the gone Consumer and this cluster,
// and that no existing Consumer uses; one owned elsewhere or by no one stays.

// departed is what a Consumer's delete event left to collect: the durable
// its last spec named.
type departed struct {
	uid             types.UID
	stream, durable string
}

// departures holds the delete events not collected yet, by object. They are
// kept in memory only: after a restart the sweep finds what they named.
type departures struct {
	mu   sync.Mutex
	byID map[types.NamespacedName]departed
}

func (d *departures) put(key types.NamespacedName, v departed) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.byID == nil {
		d.byID = map[types.NamespacedName]departed{}
	}
	d.byID[key] = v
}

func (d *departures) get(key types.NamespacedName) (departed, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	v, ok := d.byID[key]
	return v, ok
}

// done forgets a departure once collected, unless a newer one of the same
// name came in the meantime.
func (d *departures) done(key types.NamespacedName, uid types.UID) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.byID[key].uid == uid {
		delete(d.byID, key)
	}
}

// notDeleted keeps delete events away from the Consumer's usual handler:
// onDeparture handles them, so the departure is recorded before the
// reconcile that collects it runs.
var notDeleted = predicate.Funcs{DeleteFunc: func(event.DeleteEvent) bool { return false }}

// onDeparture records a deleted Consumer's durable and queues its
// collection.
func (r *ConsumerReconciler) onDeparture() handler.EventHandler {
	return handler.Funcs{
		DeleteFunc: func(_ context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			c, ok := e.Object.(*hubflowv1.Consumer)
			if !ok {
				return
			}
			key := client.ObjectKeyFromObject(c)
			r.departures.put(key, departed{uid: c.UID,
				stream: semantic.StreamName(c.Namespace, c.Spec.TopicRef.Name), durable: semantic.DurableName(c)})
			q.Add(reconcile.Request{NamespacedName: key})
		},
	}
}

// collect deletes the durable of a Consumer that is gone, when a delete
// event named one. An error retries the reconcile with backoff.
func (r *ConsumerReconciler) collect(ctx context.Context, key types.NamespacedName) error {
	d, ok := r.departures.get(key)
	if !ok {
		return nil
	}
	info, err := r.hub.Consumer(ctx, d.stream, d.durable)
	switch {
	case errors.Is(err, hub.ErrNotFound):
		r.departures.done(key, d.uid)
		return nil
	case err != nil:
		return err
	}
	if semantic.OwnershipOf(info.Config.Metadata, r.cluster, key.Namespace, key.Name) != semantic.Owned {
		gone := &hubflowv1.Consumer{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name, UID: d.uid}}
		r.recorder.Eventf(gone, nil, corev1.EventTypeWarning, "DurableLeftAlone", "Delete",
			"did not delete durable %s on stream %s: it belongs to %q, not to this Consumer", d.durable, d.stream, semantic.OwnerOf(info.Config.Metadata))
		r.departures.done(key, d.uid)
		return nil
	}
	used, err := inUse(ctx, r.client, d.stream, d.durable, key)
	if err != nil || used {
		if err == nil {
			r.departures.done(key, d.uid)
		}
		return err
	}
	if err := r.hub.DeleteConsumer(ctx, d.stream, d.durable); err != nil {
		return err
	}
	ctrl.LoggerFrom(ctx).Info("deleted the durable of a deleted Consumer; its messages stay in the stream", "stream", d.stream, "durable", d.durable)
	r.departures.done(key, d.uid)
	return nil
}

// inUse: a Consumer of owner's namespace and name (created again since)
// exists and names this durable. A Consumer still being deleted counts: its
// durable goes when it does.
func inUse(ctx context.Context, c client.Reader, stream, durable string, owner types.NamespacedName) (bool, error) {
	var list hubflowv1.ConsumerList
	if err := c.List(ctx, &list, client.InNamespace(owner.Namespace),
		client.MatchingFields{streamIndex: consumerKey(stream, durable)}); err != nil {
		return false, err
	}
	for _, c := range list.Items {
		if c.Name == owner.Name {
			return true, nil
		}
	}
	return false, nil
}

// sweepMark is what a stream looked like when the sweep last found nothing
// to collect on it: as long as neither its number of durables nor the
// number of Consumers naming it changes, there is nothing new to collect.
type sweepMark struct {
	durables, consumers int
}

// sweep collects the durables a delete event did not: on every stream this
// cluster's hubflow owns, a durable whose metadata names a Consumer of this
// cluster that no longer exists (or no longer names it) is deleted. Only
// durables stamped with this cluster are touched: one without a cluster was
// written by an earlier release and may be another cluster's (its Consumer,
// if it still exists, stamps it on its next reconcile). A stream is listed
// only when it changed since it was last found clean, so a steady hub costs
// nothing. listed holds the consumer listings the observer made anyway.
func (o *observer) sweep(ctx context.Context, streams []*jetstream.StreamInfo, consumers []hubflowv1.Consumer, listed map[string][]*jetstream.ConsumerInfo) {
	log := ctrl.LoggerFrom(ctx).WithName("observer")
	naming := map[string]int{}
	for i := range consumers {
		c := &consumers[i]
		naming[semantic.StreamName(c.Namespace, c.Spec.TopicRef.Name)]++
	}
	marks := make(map[string]sweepMark, len(o.swept))
	for _, s := range streams {
		if s.Config.Metadata[semantic.ClusterKey] != o.cluster || s.Config.Metadata[semantic.OwnerKey] == "" {
			continue
		}
		name := s.Config.Name
		mark := sweepMark{durables: s.State.Consumers, consumers: naming[name]}
		if prev, ok := o.swept[name]; ok && prev == mark {
			marks[name] = mark
			continue
		}
		durables, ok := listed[name]
		if !ok {
			var err error
			if durables, err = o.hub.ListConsumers(ctx, name); err != nil {
				log.V(1).Info("cannot list consumers", "stream", name, "error", err.Error())
				continue
			}
		}
		clean := true
		for _, d := range durables {
			collected, err := o.collectOrphan(ctx, name, d)
			if err != nil {
				log.V(1).Info("cannot collect durable", "stream", name, "durable", d.Name, "error", err.Error())
			}
			clean = clean && !collected && !errors.Is(err, errNotCollected)
		}
		if clean {
			marks[name] = mark
		}
	}
	o.swept = marks
}

// errNotCollected marks a durable the sweep meant to delete and could not:
// the stream is looked at again at the next interval.
var errNotCollected = errors.New("durable not collected")

// collectOrphan deletes d if this cluster's hubflow made it for a Consumer
// that is gone, and says whether it did. A Consumer this manager cannot see
// (its namespace is not among --watch-namespaces: the cache refuses to
// answer) is never taken for gone: its durable stays, and the stream is not
// listed again for it.
func (o *observer) collectOrphan(ctx context.Context, stream string, d *jetstream.ConsumerInfo) (bool, error) {
	md := d.Config.Metadata
	if md[semantic.ClusterKey] != o.cluster {
		return false, nil
	}
	ns, name, ok := strings.Cut(md[semantic.OwnerKey], "/")
	if !ok || ns == "" || name == "" {
		return false, nil
	}
	used, err := inUse(ctx, o.client, stream, d.Name, types.NamespacedName{Namespace: ns, Name: name})
	if err != nil || used {
		return false, err
	}
	if err := o.hub.DeleteConsumer(ctx, stream, d.Name); err != nil {
		return false, fmt.Errorf("%w: %w", errNotCollected, err)
	}
	ctrl.LoggerFrom(ctx).WithName("observer").Info("deleted a durable whose Consumer is gone; its messages stay in the stream",
		"stream", stream, "durable", d.Name, "consumer", md[semantic.OwnerKey])
	return true, nil
}
