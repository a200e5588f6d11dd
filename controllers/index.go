package controllers

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/internal/semantic"
)

// Cache indexes: every lookup between kinds is answered from the informer
// cache, never by a request to the API server.
const (
	// topicRefIndex indexes Producers and Consumers by the Topic they name.
	topicRefIndex = "spec.topicRef.name"
	// streamIndex indexes Topics by their stream, and Consumers by
	// "<stream>/<durable>", to map server advisories back to objects.
	streamIndex = "hubflow.io/stream"
	// deadLetterIndex indexes Consumers by the dead-letter Topic they name.
	deadLetterIndex = "spec.deadLetter.topicRef.name"
	// secretOwnerIndex indexes binding Secrets by the UID of the object
	// that controls them.
	secretOwnerIndex = "hubflow.io/binding-owner"
)

func addIndexes(ctx context.Context, mgr ctrl.Manager) error {
	idx := mgr.GetFieldIndexer()
	byTopicRef := func(o client.Object) []string { return []string{topicName(o)} }
	if err := idx.IndexField(ctx, &hubflowv1.Producer{}, topicRefIndex, byTopicRef); err != nil {
		return err
	}
	if err := idx.IndexField(ctx, &hubflowv1.Consumer{}, topicRefIndex, byTopicRef); err != nil {
		return err
	}
	if err := idx.IndexField(ctx, &hubflowv1.Consumer{}, deadLetterIndex, func(o client.Object) []string {
		if dl := o.(*hubflowv1.Consumer).Spec.DeadLetter; dl != nil {
			return []string{dl.TopicRef.Name}
		}
		return nil
	}); err != nil {
		return err
	}
	if err := idx.IndexField(ctx, &hubflowv1.Topic{}, streamIndex, func(o client.Object) []string {
		return []string{semantic.StreamName(o.GetNamespace(), o.GetName())}
	}); err != nil {
		return err
	}
	if err := idx.IndexField(ctx, &hubflowv1.Consumer{}, streamIndex, func(o client.Object) []string {
		c := o.(*hubflowv1.Consumer)
		return []string{consumerKey(semantic.StreamName(c.Namespace, c.Spec.TopicRef.Name), semantic.DurableName(c))}
	}); err != nil {
		return err
	}
	return idx.IndexField(ctx, &corev1.Secret{}, secretOwnerIndex, func(o client.Object) []string {
		if ref := metav1.GetControllerOfNoCopy(o); ref != nil {
			return []string{string(ref.UID)}
		}
		return nil
	})
}

func consumerKey(stream, durable string) string { return stream + "/" + durable }

// listRegistered fills list (a ProducerList or ConsumerList) with the
// objects that name topic, from the cache.
func listRegistered(ctx context.Context, c client.Reader, namespace, topic string, list client.ObjectList) error {
	return c.List(ctx, list, client.InNamespace(namespace), client.MatchingFields{topicRefIndex: topic})
}

// names are the names of list's items.
func names(list client.ObjectList) []string {
	var out []string
	_ = meta.EachListItem(list, func(o runtime.Object) error {
		out = append(out, o.(client.Object).GetName())
		return nil
	})
	return out
}

// producerSemantics are the semantics the registered producers publish
// with; one that asks for more than its Topic offers is left out, since it
// is refused and publishes nothing.
func producerSemantics(topicSem hubflowv1.DeliverySemantic, producers []hubflowv1.Producer) []hubflowv1.DeliverySemantic {
	out := make([]hubflowv1.DeliverySemantic, 0, len(producers))
	for i := range producers {
		if sem, err := semantic.Resolve(topicSem, producers[i].Spec.Semantic); err == nil {
			out = append(out, sem)
		}
	}
	return out
}

// topicName is the Topic an object concerns: its own name for a Topic,
// its topicRef for a Producer or Consumer.
func topicName(o client.Object) string {
	switch v := o.(type) {
	case *hubflowv1.Producer:
		return v.Spec.TopicRef.Name
	case *hubflowv1.Consumer:
		return v.Spec.TopicRef.Name
	}
	return o.GetName()
}

// topicOf maps a Producer or Consumer to its Topic, and a Consumer with a
// dead-letter Topic to that one too (its registry lists the sources).
func topicOf(_ context.Context, o client.Object) []reconcile.Request {
	reqs := []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: o.GetNamespace(), Name: topicName(o)}}}
	if c, ok := o.(*hubflowv1.Consumer); ok && c.Spec.DeadLetter != nil {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKey{Namespace: o.GetNamespace(), Name: c.Spec.DeadLetter.TopicRef.Name}})
	}
	return reqs
}

// byDeadLetterTopic maps a Topic to the Consumers that set their dead
// letters aside in it.
func byDeadLetterTopic(c client.Reader) func(context.Context, client.Object) []reconcile.Request {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		var list hubflowv1.ConsumerList
		if err := c.List(ctx, &list, client.InNamespace(o.GetNamespace()), client.MatchingFields{deadLetterIndex: o.GetName()}); err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "listing dead-letter sources", "topic", o.GetName())
			return nil
		}
		var reqs []reconcile.Request
		for _, n := range names(&list) {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKey{Namespace: o.GetNamespace(), Name: n}})
		}
		return reqs
	}
}

// byTopic returns a mapper from a Topic (or a Producer, via its Topic) to
// the objects of list's kind registered with that Topic.
func byTopic(c client.Reader, list client.ObjectList) func(context.Context, client.Object) []reconcile.Request {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		l := list.DeepCopyObject().(client.ObjectList)
		if err := listRegistered(ctx, c, o.GetNamespace(), topicName(o), l); err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "listing registrations", "topic", topicName(o))
			return nil
		}
		var reqs []reconcile.Request
		for _, n := range names(l) {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKey{Namespace: o.GetNamespace(), Name: n}})
		}
		return reqs
	}
}
