package controllers

import (
	"context"
	"errors"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/source"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/internal/semantic"
)

// ProducerReconciler registers a Producer with its Topic: it checks the
// semantic and subjects against the Topic and records the resolved client
// policy. A Producer owns nothing on the server, so it needs no finalizer.
type ProducerReconciler struct {
	reconciler
}

func (r *ProducerReconciler) setup(mgr ctrl.Manager, opts controller.Options, trigger <-chan event.GenericEvent) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&hubflowv1.Producer{}).
		Watches(&hubflowv1.Topic{},
			handler.EnqueueRequestsFromMapFunc(byTopic(r.client, &hubflowv1.ProducerList{}, producerNames)),
			builder.WithPredicates(topicChanged)).
		WatchesRawSource(source.Channel(trigger, &handler.EnqueueRequestForObject{})).
		WithOptions(opts).
		Named("producer").
		Complete(r)
}

func (r *ProducerReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var p hubflowv1.Producer
	if err := r.client.Get(ctx, req.NamespacedName, &p); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !p.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	before := p.DeepCopy()
	err := r.sync(ctx, &p)
	if perr := patchStatus(ctx, r.client, &p, before, p.Status, before.Status); perr != nil {
		err = errors.Join(err, perr)
	}
	// A Producer has nothing on the server that could drift: no resync.
	return ctrl.Result{}, err
}

func (r *ProducerReconciler) sync(ctx context.Context, p *hubflowv1.Producer) error {
	conds := newConditions(&p.Status.CommonStatus, p.Generation)
	topic, ok, err := readyTopic(ctx, r.client, p.Namespace, p.Spec.TopicRef.Name, conds)
	if !ok {
		return err
	}
	sem, err := semantic.Resolve(semantic.TopicSemantic(topic), p.Spec.Semantic)
	if err != nil {
		return ruleFailure(conds, err)
	}
	policy, err := semantic.Producer(topic, p, sem)
	if err != nil {
		return ruleFailure(conds, err)
	}
	p.Status.Semantic = sem
	p.Status.StreamName = semantic.StreamName(topic.Namespace, topic.Name)
	p.Status.Subjects = policy.Subjects
	switch {
	case policy.MessageID:
		conds.ready("publishes to stream %s with message ids, deduplicated for %s", p.Status.StreamName, policy.DuplicateWindow)
	case policy.WaitForAck:
		conds.ready("publishes to stream %s and waits for acknowledgements", p.Status.StreamName)
	default:
		conds.ready("publishes to stream %s without acknowledgements", p.Status.StreamName)
	}
	return nil
}
