package controllers

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
	// secretOwnerIndex indexes binding Secrets by the UID of the object
	// that controls them.
	secretOwnerIndex = "hubflow.io/binding-owner"
)

func addIndexes(ctx context.Context, mgr ctrl.Manager) error {
	idx := mgr.GetFieldIndexer()
	if err := idx.IndexField(ctx, &hubflowv1.Producer{}, topicRefIndex, func(o client.Object) []string {
		return []string{o.(*hubflowv1.Producer).Spec.TopicRef.Name}
	}); err != nil {
		return err
	}
	if err := idx.IndexField(ctx, &hubflowv1.Consumer{}, topicRefIndex, func(o client.Object) []string {
		return []string{o.(*hubflowv1.Consumer).Spec.TopicRef.Name}
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

// registered lists the Producers and Consumers that name a Topic.
func registered(ctx context.Context, c client.Reader, namespace, topic string) ([]hubflowv1.Producer, []hubflowv1.Consumer, error) {
	var producers hubflowv1.ProducerList
	if err := c.List(ctx, &producers, client.InNamespace(namespace), client.MatchingFields{topicRefIndex: topic}); err != nil {
		return nil, nil, err
	}
	var consumers hubflowv1.ConsumerList
	if err := c.List(ctx, &consumers, client.InNamespace(namespace), client.MatchingFields{topicRefIndex: topic}); err != nil {
		return nil, nil, err
	}
	return producers.Items, consumers.Items, nil
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

// requestsFor maps a Producer or Consumer to its Topic.
func topicOf(_ context.Context, o client.Object) []reconcile.Request {
	var name string
	switch v := o.(type) {
	case *hubflowv1.Producer:
		name = v.Spec.TopicRef.Name
	case *hubflowv1.Consumer:
		name = v.Spec.TopicRef.Name
	}
	return []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: o.GetNamespace(), Name: name}}}
}

// byTopic returns a mapper from a Topic (or a Producer, via its Topic) to
// the objects of list's kind registered with that Topic.
func byTopic(c client.Reader, list client.ObjectList, names func(client.ObjectList) []string) func(context.Context, client.Object) []reconcile.Request {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		topic := o.GetName()
		switch v := o.(type) {
		case *hubflowv1.Producer:
			topic = v.Spec.TopicRef.Name
		case *hubflowv1.Consumer:
			topic = v.Spec.TopicRef.Name
		}
		l := list.DeepCopyObject().(client.ObjectList)
		if err := c.List(ctx, l, client.InNamespace(o.GetNamespace()), client.MatchingFields{topicRefIndex: topic}); err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "listing registrations", "topic", topic)
			return nil
		}
		var reqs []reconcile.Request
		for _, n := range names(l) {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKey{Namespace: o.GetNamespace(), Name: n}})
		}
		return reqs
	}
}

func consumerNames(l client.ObjectList) []string {
	var out []string
	for _, c := range l.(*hubflowv1.ConsumerList).Items {
		out = append(out, c.Name)
	}
	return out
}

func producerNames(l client.ObjectList) []string {
	var out []string
	for _, p := range l.(*hubflowv1.ProducerList).Items {
		out = append(out, p.Name)
	}
	return out
}
