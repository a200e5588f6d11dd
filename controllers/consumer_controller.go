package controllers

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/source"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/internal/hub"
	"github.com/hubflow/hubflow/internal/semantic"
	"github.com/hubflow/hubflow/pkg/binding"
)

// ConsumerReconciler makes a Consumer's durable pull consumer match its spec
// and the semantic it resolves to on its Topic.
type ConsumerReconciler struct {
	reconciler
	// wakeTopics reaches the Topic reconciler: a Consumer that finds its
	// stream missing says so, since the stream's own advisory may never come.
	wakeTopics chan<- event.GenericEvent
	// deadLetters moves this cluster's dead letters and answers for them.
	deadLetters *deadLetters
	// departures are the deleted Consumers whose durables are still to be
	// collected (collect.go).
	departures departures
}

func (r *ConsumerReconciler) setup(mgr ctrl.Manager, opts controller.Options, trigger <-chan event.GenericEvent) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&hubflowv1.Consumer{}, builder.WithPredicates(notDeleted)).
		Watches(&hubflowv1.Consumer{}, r.onDeparture()).
		// A binding Secret deleted or edited behind hubflow's back is restored.
		Owns(&corev1.Secret{}).
		Watches(&hubflowv1.Topic{},
			handler.EnqueueRequestsFromMapFunc(byTopic(r.client, &hubflowv1.ConsumerList{})),
			builder.WithPredicates(topicChanged)).
		// A dead-letter Topic becoming ready (or going) changes where
		// dead letters go.
		Watches(&hubflowv1.Topic{},
			handler.EnqueueRequestsFromMapFunc(byDeadLetterTopic(r.client)),
			builder.WithPredicates(topicChanged)).
		// A producer's semantic bounds the consumers' effective semantic.
		Watches(&hubflowv1.Producer{},
			handler.EnqueueRequestsFromMapFunc(byTopic(r.client, &hubflowv1.ConsumerList{})),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WatchesRawSource(source.Channel(trigger, &handler.EnqueueRequestForObject{})).
		WithOptions(opts).
		Named("consumer").
		Complete(r)
}

func (r *ConsumerReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var c hubflowv1.Consumer
	if err := r.client.Get(ctx, req.NamespacedName, &c); err != nil {
		if apierrors.IsNotFound(err) {
			forgetObject("Consumer", req.NamespacedName)
			return ctrl.Result{}, r.collect(ctx, req.NamespacedName)
		}
		return ctrl.Result{}, err
	}
	if !c.DeletionTimestamp.IsZero() {
		return retryConflict(r.delete(ctx, &c))
	}
	// The durable is collected once the Consumer is gone (collect.go): a
	// finalizer an earlier release added is taken off.
	if controllerutil.ContainsFinalizer(&c, finalizer) {
		if err := removeFinalizer(ctx, r.client, &c); err != nil {
			return retryConflict(err)
		}
	}
	before := c.DeepCopy()
	conds := newConditions(&c.Status.CommonStatus, c.Generation)
	renewIn, err := r.sync(ctx, &c, conds)
	if errors.Is(err, errTopicPending) {
		return r.requeue(), nil
	}
	if !isReady(c.Status.Conditions) {
		r.forgetGone(ctx, &c)
	}
	notRenewed(&c.Status.CommonStatus, conds, "Consumer")
	c.Status.EffectiveSemantic = delivered(c.Status.EffectiveSemantic, c.Status.Conditions)
	reportOutcome(ctx, r.recorder, &c, before.Status.Conditions, c.Status.Conditions)
	if perr := patchStatus(ctx, r.client, &c, before, c.Status, before.Status); perr != nil {
		err = errors.Join(err, perr)
	}
	if errors.Is(err, errCacheLag) {
		return cacheLagRetry, nil
	}
	if errors.Is(err, errStalled) {
		result := stalledRecheck
		if renewIn > 0 && renewIn < result.RequeueAfter {
			result.RequeueAfter = renewIn
		}
		return result, nil
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	result := r.requeue()
	if renewIn > 0 && renewIn < result.RequeueAfter {
		result.RequeueAfter = renewIn
	}
	return result, nil
}

// sync returns when the Consumer's credentials are due for renewal (zero
// for none).
func (r *ConsumerReconciler) sync(ctx context.Context, c *hubflowv1.Consumer, conds conditions) (time.Duration, error) {
	topic, ok, err := readyTopic(ctx, r.client, c.Namespace, c.Spec.TopicRef.Name, conds)
	c.Status.Semantic = shownSemantic(topic, c.Spec.Semantic)
	if !ok {
		return 0, err
	}
	sem, err := semantic.Resolve(semantic.TopicSemantic(topic), c.Spec.Semantic)
	if err != nil {
		return 0, ruleFailure(conds, err)
	}
	desired, err := semantic.Consumer(topic, c, sem)
	if err != nil {
		return 0, ruleFailure(conds, err)
	}
	stream := semantic.StreamName(topic.Namespace, topic.Name)
	if c.Spec.DeadLetter != nil {
		if sem == hubflowv1.AtMostOnce {
			c.Status.Semantic, c.Status.DeadLetter = hubflowv1.StatusSemantic(sem), nil
			conds.failed(false, ReasonDeadLetterNeedsAcks,
				"spec.deadLetter needs an acknowledging semantic, and this Consumer reads as AtMostOnce (Topic %s's semantic): declare spec.semantic AtLeastOnce or ExactlyOnce, or remove spec.deadLetter",
				topic.Name)
			return 0, nil
		}
		if r.accounts != nil {
			c.Status.Semantic, c.Status.DeadLetter = hubflowv1.StatusSemantic(sem), nil
			conds.failed(false, ReasonDeadLetterNeedsSharedAccount,
				"spec.deadLetter is not available on a hub with one NATS account per namespace yet: the server announces dead letters inside each account, and hubflow captures them in one; remove spec.deadLetter, or run the manager without --tenancy=namespace")
			return 0, nil
		}
		// The capture stream exists before the durable can give up on a
		// message, so no announcement of one is missed.
		if err := r.deadLetters.ensureCapture(ctx); err != nil {
			return 0, hubFailure(conds, err)
		}
	}
	var producers hubflowv1.ProducerList
	if err := listRegistered(ctx, r.client, c.Namespace, topic.Name, &producers); err != nil {
		return 0, err
	}
	r.owned(desired.Metadata)
	c.Status.Semantic = hubflowv1.StatusSemantic(sem)
	c.Status.EffectiveSemantic = hubflowv1.StatusSemantic(semantic.Effective(sem, producerSemantics(semantic.TopicSemantic(topic), producers.Items)))
	c.Status.Undeliverable = semantic.Undeliverable(stream, desired)

	// Every path of apply sets Ready: a binding is written only for a
	// durable that serves. A refused edit leaves the durable Ready with its
	// earlier settings: the binding then describes those, and its
	// credentials are renewed all the same, so the workload stays connected.
	serving := desired
	applyErr := r.apply(ctx, c, stream, desired, &serving, conds)
	if !isReady(c.Status.Conditions) {
		return 0, applyErr
	}
	if err := r.syncDeadLetter(ctx, c, serving, conds); err != nil {
		applyErr = errors.Join(applyErr, err)
	}
	req := consumerBinding(c, serving, semantic.Stream(topic).MaxAge)
	res, err := r.bind(ctx, req)
	if err != nil {
		return 0, errors.Join(applyErr, err)
	}
	if !r.report(c, req, res, conds, &c.Status.Binding) {
		return 0, applyErr
	}
	return r.renewal(res), applyErr
}

// servedConfig is a durable's config as the server holds it, with its
// filter in one place: the server may hold a single filter in either field.
func servedConfig(cfg jetstream.ConsumerConfig) jetstream.ConsumerConfig {
	if cfg.FilterSubject != "" {
		cfg.FilterSubjects = append(slices.Clone(cfg.FilterSubjects), cfg.FilterSubject)
		cfg.FilterSubject = ""
	}
	return cfg
}

// forgetGone clears the stream and durable names status gives, with the
// lag, once that durable no longer exists, so neither kubectl nor the lag
// metrics name what is gone. While the hub cannot say, they stay.
func (r *ConsumerReconciler) forgetGone(ctx context.Context, c *hubflowv1.Consumer) {
	if c.Status.DurableName == "" {
		return
	}
	if _, err := r.hub.Consumer(ctx, c.Status.StreamName, c.Status.DurableName); errors.Is(err, hub.ErrNotFound) {
		c.Status.StreamName, c.Status.DurableName, c.Status.Lag = "", "", nil
	}
}

// consumerBinding is what a Consumer's client needs: its durable, how to
// acknowledge, and a user that may read that durable only.
func consumerBinding(c *hubflowv1.Consumer, cfg jetstream.ConsumerConfig, maxAge time.Duration) bindingRequest {
	inbox := semantic.InboxPrefix(semantic.RoleConsumer, c.Namespace, c.Name)
	policy := semantic.ConsumerClientPolicy(hubflowv1.DeliverySemantic(c.Status.Semantic), cfg)
	return bindingRequest{
		owner:  c,
		secret: semantic.BindingSecretName(c.Name, c.Spec.BindingSecretName),
		binding: binding.Binding{
			Role: binding.RoleConsumer, Stream: c.Status.StreamName, Subjects: cfg.FilterSubjects,
			Durable: cfg.Durable, Semantic: string(policy.Semantic), Inbox: inbox,
			Ack: string(policy.Ack), AckWait: policy.AckWait, RedeliveryDelays: policy.RedeliveryDelays,
			MaxDeliver: policy.MaxDeliver, IdempotencyKey: policy.IdempotencyKey, MaxAge: maxAge,
		},
		perms: semantic.ConsumerPermissions(policy.Semantic, c.Status.StreamName, cfg.Durable, inbox),
	}
}

// apply makes the durable match desired and sets Ready and Synced.
//
// When the server keeps a durable with other settings than desired (an
// edit it refused or cannot make in place), serving is set to them.
func (r *ConsumerReconciler) apply(ctx context.Context, c *hubflowv1.Consumer, stream string, desired jetstream.ConsumerConfig, serving *jetstream.ConsumerConfig, conds conditions) error {
	if neverReconciled(c.Status.Conditions) {
		// As for a new Topic's stream (TopicReconciler.syncStream): create
		// first; the server refuses it over a durable of another
		// configuration, and the lookup below then decides.
		if err := r.create(ctx, c, stream, desired, conds, true); !errors.Is(err, hub.ErrExists) {
			return err
		}
	}
	observed, err := r.hub.Consumer(ctx, stream, desired.Durable)
	switch {
	case errors.Is(err, hub.ErrNotFound):
		return r.create(ctx, c, stream, desired, conds, false)
	case err != nil:
		return hubFailure(conds, err)
	}
	adopting := false
	switch semantic.OwnershipOf(observed.Config.Metadata, r.cluster, c.Namespace, c.Name) {
	case semantic.OwnedElsewhere:
		// Status, and so the lag metrics exported from it, names only what
		// this Consumer owns.
		c.Status.StreamName, c.Status.DurableName, c.Status.Lag = "", "", nil
		conds.failed(false, ReasonOwnedElsewhere,
			"durable %s on stream %s belongs to %s: choose another durableName", desired.Durable, stream, semantic.OwnerOf(observed.Config.Metadata))
		return nil
	case semantic.Unowned:
		if !c.Spec.AdoptExisting {
			c.Status.StreamName, c.Status.DurableName, c.Status.Lag = "", "", nil
			conds.failed(false, ReasonNotOwned,
				"durable %s on stream %s exists but hubflow did not create it, so hubflow leaves it as it is; set spec.adoptExisting: true to take it over (its settings are then rewritten to this spec), or choose another durableName",
				desired.Durable, stream)
			return nil
		}
		adopting = true
		desired.Metadata[semantic.AdoptedKey] = time.Now().UTC().Format(time.RFC3339)
	}
	semantic.KeepAdoption(desired.Metadata, observed.Config.Metadata)
	changes := semantic.ConsumerChanges(desired, observed.Config)
	if immutable := changes.Immutable(); len(immutable) > 0 {
		if adopting {
			c.Status.StreamName, c.Status.DurableName, c.Status.Lag = "", "", nil
			conds.failed(false, ReasonImmutableChange, "durable %s cannot be adopted: JetStream cannot change %s in place; it is left as it is",
				desired.Durable, joinChanges(immutable))
			return nil
		}
		c.Status.StreamName, c.Status.DurableName = stream, desired.Durable
		if slices.ContainsFunc(immutable, func(ch semantic.Change) bool { return ch.Field == "ackPolicy" }) {
			// The durable acknowledges otherwise than the semantic needs: no
			// binding could describe both, and a client following either
			// would break the promise. The earlier binding stays as it was.
			conds.failed(false, ReasonImmutableChange,
				"durable %s has %s, which semantic %s cannot run on, and JetStream cannot change it in place: recreate the Consumer (or give it another durableName) to get a durable for %s",
				desired.Durable, joinChanges(immutable), c.Status.Semantic, c.Status.Semantic)
			return nil
		}
		*serving = servedConfig(observed.Config)
		conds.failed(true, ReasonImmutableChange,
			"JetStream cannot change %s of durable %s in place; it keeps serving with the server's settings. Recreate the Consumer (or declare its semantic) to apply it",
			joinChanges(immutable), desired.Durable)
		return nil
	}
	if len(changes) > 0 {
		updated, err := r.hub.UpdateConsumer(ctx, stream, desired)
		if err != nil {
			if adopting {
				c.Status.StreamName, c.Status.DurableName, c.Status.Lag = "", "", nil
				return hubFailure(conds, err)
			}
			c.Status.StreamName, c.Status.DurableName = stream, desired.Durable
			*serving = servedConfig(observed.Config)
			return updateRefused(conds, "durable", desired.Durable, err)
		}
		observed = updated
		if adopting {
			r.recorder.Eventf(c, nil, corev1.EventTypeNormal, ReasonAdopted, "Adopt",
				"adopted durable %s (spec.adoptExisting): %s", desired.Durable, joinChanges(changes))
		} else {
			r.recorder.Eventf(c, nil, corev1.EventTypeNormal, "ConsumerUpdated", "Update",
				"updated durable %s: %s", desired.Durable, joinChanges(changes))
		}
	}
	c.Status.StreamName, c.Status.DurableName = stream, desired.Durable
	c.Status.Lag = lagOf(observed)
	adopted(conds, "durable", desired.Durable, desired.Metadata)
	conds.ready("durable %s reads stream %s as %s", desired.Durable, stream, c.Status.Semantic)
	return nil
}

// create creates the durable. With mayExist, a durable already there is
// returned as hub.ErrExists with the status untouched, for the caller to
// look at.
func (r *ConsumerReconciler) create(ctx context.Context, c *hubflowv1.Consumer, stream string, desired jetstream.ConsumerConfig, conds conditions, mayExist bool) error {
	info, err := r.hub.CreateConsumer(ctx, stream, desired)
	if mayExist && errors.Is(err, hub.ErrExists) {
		return err
	}
	if errors.Is(err, hub.ErrNotFound) {
		// The stream went away behind hubflow's back; the Topic recreates
		// it, and that (or the observer) wakes this consumer again.
		c.Status.StreamName, c.Status.DurableName, c.Status.Lag = "", "", nil
		// The Topic may still say Ready: nats-server sometimes drops
		// STREAM.DELETED, while each durable's deletion is announced on its own.
		if r.wakeTopics != nil {
			topic := &hubflowv1.Topic{ObjectMeta: metav1.ObjectMeta{Namespace: c.Namespace, Name: c.Spec.TopicRef.Name}}
			send(ctx, r.wakeTopics, topic)
		}
		conds.failed(false, ReasonTopicNotReady, "stream %s is missing; waiting for Topic %s to recreate it", stream, c.Spec.TopicRef.Name)
		return nil
	}
	if err != nil {
		return hubFailure(conds, err)
	}
	c.Status.StreamName, c.Status.DurableName = stream, desired.Durable
	c.Status.Lag = lagOf(info)
	if isReady(c.Status.Conditions) {
		// Its acknowledgement state went with the old durable: depending on
		// the deliver policy, messages are delivered again or skipped.
		r.recorder.Eventf(c, nil, corev1.EventTypeWarning, "ConsumerRecreated", "Create",
			"durable %s was deleted outside hubflow and has been recreated; its acknowledgement state is lost (deliverPolicy %s)",
			desired.Durable, c.Spec.DeliverPolicy)
	}
	// A first creation records no event: Ready says it, and on a large
	// apply such events were a third of the manager's writes.
	conds.ready("durable %s reads stream %s as %s", desired.Durable, stream, c.Status.Semantic)
	return nil
}

// delete serves a Consumer deleted while it still carries the finalizer of
// an earlier release: it removes the durable consumer, if this Consumer owns
// it, before the Consumer goes. One owned by another Consumer (a durable
// name clash) or by no one keeps its acknowledgement state. Its
// acknowledgement state is consumer state, not data: the messages stay in
// the Topic's stream. Without the finalizer there is nothing to do until the
// Consumer is gone.
func (r *ConsumerReconciler) delete(ctx context.Context, c *hubflowv1.Consumer) error {
	if !controllerutil.ContainsFinalizer(c, finalizer) {
		return nil
	}
	if err := r.deleteOwned(ctx, c); err != nil {
		before := c.DeepCopy()
		hubFailure(newConditions(&c.Status.CommonStatus, c.Generation), err)
		return errors.Join(err, patchStatus(ctx, r.client, c, before, c.Status, before.Status))
	}
	return removeFinalizer(ctx, r.client, c)
}

// deleteOwned reads the durable's owner first; a missing durable is already
// deleted. The names come from the spec, not the status: a status write may
// have been lost, and one written by an earlier release may name a durable
// it never owned.
func (r *ConsumerReconciler) deleteOwned(ctx context.Context, c *hubflowv1.Consumer) error {
	stream, durable := semantic.StreamName(c.Namespace, c.Spec.TopicRef.Name), semantic.DurableName(c)
	info, err := r.hub.Consumer(ctx, stream, durable)
	switch {
	case errors.Is(err, hub.ErrNotFound):
		return nil
	case err != nil:
		return err
	}
	if semantic.OwnershipOf(info.Config.Metadata, r.cluster, c.Namespace, c.Name) != semantic.Owned {
		r.recorder.Eventf(c, nil, corev1.EventTypeWarning, "DurableLeftAlone", "Delete",
			"did not delete durable %s on stream %s: it belongs to %q, not to this Consumer", durable, stream, semantic.OwnerOf(info.Config.Metadata))
		return nil
	}
	if err := r.hub.DeleteConsumer(ctx, stream, durable); err != nil {
		return err
	}
	r.recorder.Eventf(c, nil, corev1.EventTypeNormal, "ConsumerDeleted", "Delete",
		"deleted durable %s; the messages stay in stream %s", durable, stream)
	return nil
}

// errTopicPending: the Topic is there but not reconciled yet, and the
// registrant was never written either. It waits without a status write,
// which would only show its semantic for the moments until the Ready write
// (one status write per object on the way to Ready). The Topic's first
// status write wakes it through the watch on Topics: the registrant is in
// the cache by then, since it was just reconciled from it. No timed
// recheck, which would cost a second reconcile of every such registrant;
// the usual backstop resync stays.
var errTopicPending = errors.New("the Topic is not reconciled yet")

// neverReconciled: no status write has set Ready yet, as for an object
// just created.
func neverReconciled(conds []metav1.Condition) bool {
	return meta.FindStatusCondition(conds, hubflowv1.ConditionReady) == nil
}

// readyTopic reads the Topic a Producer or Consumer names. When it is
// missing, going away or not ready, the conditions say so and ok is false;
// a watch on Topics wakes the object again, so no retry is needed.
func readyTopic(ctx context.Context, c client.Reader, namespace, name string, conds conditions) (*hubflowv1.Topic, bool, error) {
	var topic hubflowv1.Topic
	err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &topic)
	switch {
	case apierrors.IsNotFound(err):
		conds.failed(false, ReasonTopicNotFound, "Topic %s does not exist in namespace %s; waiting for it", name, namespace)
		return nil, false, nil
	case err != nil:
		return nil, false, err
	case !topic.DeletionTimestamp.IsZero():
		conds.failed(false, ReasonTopicNotReady, "Topic %s is being deleted", name)
		return &topic, false, nil
	case neverReconciled(topic.Status.Conditions):
		// Created moments ago, as when a whole flow is applied at once: its
		// first status write wakes the registrant. One written before says
		// so, so that a Ready it showed does not outlive a recreated Topic.
		if neverReconciled(conds.status.Conditions) {
			return &topic, false, errTopicPending
		}
		conds.failed(false, ReasonTopicNotReady, "Topic %s is not reconciled yet", name)
		return &topic, false, nil
	case !isReady(topic.Status.Conditions):
		conds.failed(false, ReasonTopicNotReady, "Topic %s is not ready: %s", name,
			meta.FindStatusCondition(topic.Status.Conditions, hubflowv1.ConditionReady).Message)
		return &topic, false, nil
	}
	return &topic, true, nil
}

// ruleFailure reports a spec that cannot work with its Topic. Retrying does
// not help; a change to either object wakes the reconciler again.
func ruleFailure(conds conditions, err error) error {
	var rule *semantic.RuleError
	if !errors.As(err, &rule) {
		return err
	}
	conds.failed(false, rule.Reason, "%s", rule.Error())
	return nil
}

// topicChanged lets through the Topic updates its Producers and Consumers
// depend on: a spec change, readiness, or a recreated stream. Registry and
// other status updates are not among them.
var topicChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		oldT, ok1 := e.ObjectOld.(*hubflowv1.Topic)
		newT, ok2 := e.ObjectNew.(*hubflowv1.Topic)
		if !ok1 || !ok2 {
			return true
		}
		return oldT.Generation != newT.Generation ||
			isReady(oldT.Status.Conditions) != isReady(newT.Status.Conditions) ||
			!newT.DeletionTimestamp.Equal(oldT.DeletionTimestamp) ||
			!equality.Semantic.DeepEqual(
				meta.FindStatusCondition(oldT.Status.Conditions, ConditionStreamRecreated),
				meta.FindStatusCondition(newT.Status.Conditions, ConditionStreamRecreated))
	},
}
