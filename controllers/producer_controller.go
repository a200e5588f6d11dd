package controllers

import (
	"context"
	"errors"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"time"

	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/source"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/internal/hub"
	"github.com/hubflow/hubflow/internal/semantic"
	"github.com/hubflow/hubflow/pkg/binding"
)

// ProducerReconciler registers a Producer with its Topic: it checks the
// semantic and subjects against the Topic and writes the resolved client
// policy, with credentials to publish on its subjects only, into the
// Producer's binding Secret. A Producer owns nothing on the server, so it
// needs no finalizer; its binding Secret is garbage-collected with it.
type ProducerReconciler struct {
	reconciler
}

func (r *ProducerReconciler) setup(mgr ctrl.Manager, opts controller.Options, trigger <-chan event.GenericEvent) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&hubflowv1.Producer{}).
		// A binding Secret deleted or edited behind hubflow's back is restored.
		Owns(&corev1.Secret{}).
		Watches(&hubflowv1.Topic{},
			handler.EnqueueRequestsFromMapFunc(byTopic(r.client, &hubflowv1.ProducerList{})),
			builder.WithPredicates(topicChanged)).
		WatchesRawSource(source.Channel(trigger, &handler.EnqueueRequestForObject{})).
		WithOptions(opts).
		Named("producer").
		Complete(r)
}

func (r *ProducerReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var p hubflowv1.Producer
	if err := r.client.Get(ctx, req.NamespacedName, &p); err != nil {
		if apierrors.IsNotFound(err) {
			forgetObject("Producer", req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !p.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	before := p.DeepCopy()
	conds := newConditions(&p.Status.CommonStatus, p.Generation)
	renewIn, err := r.sync(ctx, &p, conds)
	if errors.Is(err, errTopicPending) {
		return ctrl.Result{}, nil // the Topic's first status write wakes it
	}
	if !isReady(p.Status.Conditions) {
		r.forgetGone(ctx, &p)
	}
	notRenewed(&p.Status.CommonStatus, conds, "Producer")
	reportOutcome(ctx, r.recorder, &p, before.Status.Conditions, p.Status.Conditions)
	if perr := patchStatus(ctx, r.client, &p, before, p.Status, before.Status); perr != nil {
		err = errors.Join(err, perr)
	}
	if errors.Is(err, errCacheLag) {
		return cacheLagRetry, nil
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	// A Producer has nothing on the server that could drift: no resync,
	// only the renewal of its credentials.
	return ctrl.Result{RequeueAfter: renewIn}, nil
}

// forgetGone clears the stream name and subjects status gives once that
// stream no longer exists (its Topic deleted, say). While the hub cannot
// say, they stay.
func (r *ProducerReconciler) forgetGone(ctx context.Context, p *hubflowv1.Producer) {
	if p.Status.StreamName == "" {
		return
	}
	if _, err := r.hub.Stream(ctx, p.Status.StreamName); errors.Is(err, hub.ErrNotFound) {
		p.Status.StreamName, p.Status.Subjects = "", nil
	}
}

// sync returns when the Producer's credentials are due for renewal (zero
// for none).
func (r *ProducerReconciler) sync(ctx context.Context, p *hubflowv1.Producer, conds conditions) (time.Duration, error) {
	topic, ok, err := readyTopic(ctx, r.client, p.Namespace, p.Spec.TopicRef.Name, conds)
	p.Status.Semantic = shownSemantic(topic, p.Spec.Semantic)
	if !ok {
		return 0, err
	}
	sem, err := semantic.Resolve(semantic.TopicSemantic(topic), p.Spec.Semantic)
	if err != nil {
		return 0, ruleFailure(conds, err)
	}
	policy, err := semantic.Producer(topic, p, sem)
	if err != nil {
		return 0, ruleFailure(conds, err)
	}
	p.Status.Semantic = hubflowv1.StatusSemantic(sem)
	p.Status.StreamName = semantic.StreamName(topic.Namespace, topic.Name)
	p.Status.Subjects = policy.Subjects

	req := producerBinding(p, policy)
	res, err := r.bind(ctx, req)
	if err != nil {
		return 0, err
	}
	if !r.report(p, req, res, conds, &p.Status.Binding) {
		return 0, nil
	}
	switch {
	case policy.MessageID:
		conds.ready("publishes to stream %s with message ids, deduplicated for %s", p.Status.StreamName, policy.DuplicateWindow)
	case policy.WaitForAck:
		conds.ready("publishes to stream %s and waits for acknowledgements", p.Status.StreamName)
	default:
		conds.ready("publishes to stream %s without acknowledgements", p.Status.StreamName)
	}
	return r.renewal(res), nil
}

// producerBinding is what a Producer's client needs: where to publish, how
// to wait for acks and retry, and a user that may publish there only.
func producerBinding(p *hubflowv1.Producer, policy semantic.ProducerPolicy) bindingRequest {
	inbox := semantic.InboxPrefix(semantic.RoleProducer, p.Namespace, p.Name)
	return bindingRequest{
		owner:  p,
		secret: semantic.BindingSecretName(p.Name, p.Spec.BindingSecretName),
		binding: binding.Binding{
			Role: binding.RoleProducer, Stream: p.Status.StreamName, Subjects: policy.Subjects,
			Semantic: string(policy.Semantic), Inbox: inbox,
			WaitForAck: policy.WaitForAck, MessageID: policy.MessageID,
			AckTimeout: policy.AckTimeout, Retries: policy.Retries, RetryWait: policy.RetryWait,
			DuplicateWindow: policy.DuplicateWindow,
		},
		perms: semantic.ProducerPermissions(policy, inbox),
	}
}
