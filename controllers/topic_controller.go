package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/internal/hub"
	"github.com/hubflow/hubflow/internal/semantic"
)

// TopicReconciler makes a Topic's stream match its spec and reports who is
// registered with it.
type TopicReconciler struct {
	reconciler
	// windowGrace: how long a duplicate window stays held for a Producer
	// that is gone (Options.WindowHoldGrace).
	windowGrace time.Duration
}

func (r *TopicReconciler) setup(mgr ctrl.Manager, opts controller.Options, trigger <-chan event.GenericEvent) error {
	// Registrations matter when they appear, go, or change their spec; their
	// status writes (lag, conditions) do not concern the Topic.
	registrations := builder.WithPredicates(predicate.GenerationChangedPredicate{})
	return ctrl.NewControllerManagedBy(mgr).
		For(&hubflowv1.Topic{}, builder.WithPredicates(notCreated)).
		Watches(&hubflowv1.Topic{}, firstLookLater()).
		Watches(&hubflowv1.Producer{}, enqueueTopicLater(), registrations).
		Watches(&hubflowv1.Consumer{}, enqueueTopicLater(), registrations).
		WatchesRawSource(source.Channel(trigger, &handler.EnqueueRequestForObject{})).
		WithOptions(opts).
		Named("topic").
		Complete(r)
}

// registryDelay batches registry updates: a flow applied at once (a Topic,
// its Producers and Consumers) updates the Topic's registry view in one
// status write instead of one per registration.
const registryDelay = time.Second

// enqueueTopicLater maps a Producer or Consumer event to its Topic, due
// after registryDelay; the queue merges requests for the same Topic.
func enqueueTopicLater() handler.EventHandler {
	add := func(o client.Object, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		for _, req := range topicOf(context.Background(), o) {
			q.AddAfter(req, registryDelay)
		}
	}
	return handler.Funcs{
		CreateFunc: func(_ context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(e.Object, q)
		},
		UpdateFunc: func(_ context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(e.ObjectNew, q)
		},
		DeleteFunc: func(_ context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(e.Object, q)
		},
	}
}

// notCreated leaves create events to firstLookLater.
var notCreated = predicate.Funcs{CreateFunc: func(event.CreateEvent) bool { return false }}

// firstLookLater queues a new Topic registryDelay after its creation: the
// Producers and Consumers applied with it are registered by then, so its
// first status write, the one that makes it Ready, already lists them,
// instead of a registry update following the Ready write a second later.
// Its registrations cannot become Ready before it anyway. A Topic with a
// status already (a manager start lists every Topic as created) is queued
// at once.
func firstLookLater() handler.EventHandler {
	return handler.Funcs{
		CreateFunc: func(_ context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			req := reconcile.Request{NamespacedName: client.ObjectKeyFromObject(e.Object)}
			// The event comes moments after the creation (the creation
			// time, in whole seconds, cannot say how many).
			if topic, ok := e.Object.(*hubflowv1.Topic); ok && len(topic.Status.Conditions) == 0 {
				q.AddAfter(req, registryDelay)
				return
			}
			q.Add(req)
		},
	}
}

func (r *TopicReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var topic hubflowv1.Topic
	if err := r.client.Get(ctx, req.NamespacedName, &topic); err != nil {
		if apierrors.IsNotFound(err) {
			forgetObject("Topic", req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !topic.DeletionTimestamp.IsZero() {
		return retryConflict(r.delete(ctx, &topic))
	}
	// Only a Topic whose deletion must delete its stream needs a finalizer:
	// a retained stream needs nothing done, and one write less per Topic.
	if err := r.keepFinalizerFor(ctx, &topic); err != nil {
		return retryConflict(err)
	}

	before := topic.DeepCopy()
	recheckIn, err := r.sync(ctx, &topic)
	topic.Status.EffectiveSemantic = delivered(topic.Status.EffectiveSemantic, topic.Status.Conditions)
	reportOutcome(ctx, r.recorder, &topic, before.Status.Conditions, topic.Status.Conditions)
	if perr := patchStatus(ctx, r.client, &topic, before, topic.Status, before.Status); perr != nil {
		err = errors.Join(err, perr)
	}
	if errors.Is(err, errStalled) {
		return stalledRecheck, nil
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	result := r.requeue()
	if recheckIn > 0 && recheckIn < result.RequeueAfter {
		result.RequeueAfter = recheckIn
	}
	return result, nil
}

// sync brings the stream in line and fills in the status; it returns an
// error only for what a retry may fix, and when the stream must be looked
// at again whatever happens (zero for the resync).
func (r *TopicReconciler) sync(ctx context.Context, topic *hubflowv1.Topic) (time.Duration, error) {
	var recheckIn time.Duration
	err := r.syncStream(ctx, topic, &recheckIn)
	return recheckIn, err
}

func (r *TopicReconciler) syncStream(ctx context.Context, topic *hubflowv1.Topic, recheckIn *time.Duration) error {
	conds := newConditions(&topic.Status.CommonStatus, topic.Generation)
	desired := semantic.Stream(topic)
	r.owned(desired.Metadata)
	horizon, holder, err := r.register(ctx, topic)
	if err != nil {
		return err
	}

	outside := semantic.SubjectsInNamespace(topic)
	if neverReconciled(topic.Status.Conditions) && outside == nil {
		// A new Topic almost never finds its stream there: creating it
		// straight away saves the lookup that would say so. Nothing is
		// overwritten: the server refuses the create when a stream of that
		// name holds another configuration (owner metadata included), and
		// the lookup below then decides.
		if err := r.create(ctx, topic, desired, conds, true); !errors.Is(err, hub.ErrExists) {
			return err
		}
	}
	observed, err := r.hub.Stream(ctx, desired.Name)
	switch {
	case errors.Is(err, hub.ErrNotFound) && outside != nil:
		topic.Status.StreamName, topic.Status.Subjects = "", nil
		return ruleFailure(conds, outside)
	case errors.Is(err, hub.ErrNotFound):
		return r.create(ctx, topic, desired, conds, false)
	case err != nil:
		return hubFailure(conds, err)
	}

	adopting := false
	switch semantic.OwnershipOf(observed.Config.Metadata, r.cluster, topic.Namespace, topic.Name) {
	case semantic.OwnedElsewhere:
		// A status names nothing that belongs to someone else.
		topic.Status.StreamName, topic.Status.Subjects = "", nil
		conds.failed(false, ReasonOwnedElsewhere,
			"stream %s belongs to %s; hubflow will not take it over: rename or delete one of them",
			desired.Name, semantic.OwnerOf(observed.Config.Metadata))
		return nil
	case semantic.Unowned:
		if !topic.Spec.AdoptExisting {
			topic.Status.StreamName, topic.Status.Subjects = "", nil
			conds.failed(false, ReasonNotOwned,
				"stream %s exists but hubflow did not create it, so hubflow leaves it as it is; set spec.adoptExisting: true to take it over (its settings are then rewritten to this spec)",
				desired.Name)
			return nil
		}
		adopting = true
		desired.Metadata[semantic.AdoptedKey] = time.Now().UTC().Format(time.RFC3339)
	}
	if outside != nil {
		if adopting {
			topic.Status.StreamName, topic.Status.Subjects = "", nil
			return ruleFailure(conds, outside)
		}
		// A stream made before the rule, or an edit that would break it:
		// the stream keeps serving what it serves; only the spec is refused.
		r.served(topic, observed.Config)
		conds.failed(true, outside.Reason, "%v; stream %s keeps serving %s", outside, desired.Name, strings.Join(observed.Config.Subjects, ", "))
		return nil
	}
	semantic.KeepAdoption(desired.Metadata, observed.Config.Metadata)
	declaredWindow := desired.Duplicates
	var hold semantic.WindowHold
	if declaredWindow > 0 {
		hold = semantic.HoldWindow(declaredWindow, observed.Config.Duplicates, horizon, holder, observed.Config.Metadata, time.Now(), r.windowGrace)
		desired.Duplicates = hold.Window
		hold.Record(desired.Metadata)
	}
	changes := semantic.StreamChanges(desired, observed.Config)
	if immutable := changes.Immutable(); len(immutable) > 0 {
		// Deleting and recreating the stream would apply it, and lose every
		// message: that is the user's call, never the operator's.
		if adopting {
			topic.Status.StreamName, topic.Status.Subjects = "", nil
			conds.failed(false, ReasonImmutableChange,
				"stream %s cannot be adopted: JetStream cannot change %s in place; it is left as it is",
				desired.Name, joinChanges(immutable))
			return nil
		}
		r.served(topic, observed.Config)
		conds.failed(true, ReasonImmutableChange,
			"JetStream cannot change %s of stream %s in place; the stream keeps serving with the server's settings. Recreate the Topic to apply it",
			joinChanges(immutable), desired.Name)
		return nil
	}
	if len(changes) > 0 {
		if _, err := r.hub.UpdateStream(ctx, desired); err != nil {
			if adopting {
				topic.Status.StreamName, topic.Status.Subjects = "", nil
				return hubFailure(conds, r.explain(ctx, desired, err))
			}
			r.served(topic, observed.Config)
			return updateRefused(conds, "stream", desired.Name, r.explain(ctx, desired, err))
		}
		if adopting {
			r.recorder.Eventf(topic, nil, corev1.EventTypeNormal, ReasonAdopted, "Adopt",
				"adopted stream %s (spec.adoptExisting): %s", desired.Name, joinChanges(changes))
		} else {
			r.recorder.Eventf(topic, nil, corev1.EventTypeNormal, "StreamUpdated", "Update",
				"updated stream %s: %s", desired.Name, joinChanges(changes))
		}
	}
	r.served(topic, desired)
	adopted(conds, "stream", desired.Name, desired.Metadata)
	if desired.Duplicates > declaredWindow && declaredWindow > 0 && !hold.Until.IsZero() {
		*recheckIn = time.Until(hold.Until) + time.Second
		conds.failed(true, ReasonDuplicateWindowHeld,
			"spec.duplicateWindow %s is shorter than the retry horizon of Producer %s, which is gone but whose workloads may still retry with the binding they were given; the stream keeps a %s window until %s, then shrinks to %s",
			declaredWindow, hold.Holder, desired.Duplicates, hold.Until.Format(time.RFC3339), declaredWindow)
		return nil
	}
	if desired.Duplicates > declaredWindow && declaredWindow > 0 {
		conds.failed(true, ReasonDuplicateWindowHeld,
			"spec.duplicateWindow %s is shorter than the retry horizon of Producer %s; the stream keeps a %s window so its retries are never stored twice, until that Producer's publish policy is shortened or it is deleted",
			declaredWindow, holder, desired.Duplicates)
		return nil
	}
	conds.ready("stream %s serves %s", desired.Name, strings.Join(desired.Subjects, ", "))
	return nil
}

// served reports the stream the Topic owns, as the server holds it.
func (r *TopicReconciler) served(topic *hubflowv1.Topic, cfg jetstream.StreamConfig) {
	topic.Status.StreamName = cfg.Name
	topic.Status.Subjects = slices.Clone(cfg.Subjects)
	topic.Status.Isolation, topic.Status.Account = r.isolation(topic.Namespace)
}

// isolation is what keeps other namespaces away from namespace's streams,
// and the account they live in when the manager knows it.
func (r *TopicReconciler) isolation(namespace string) (hubflowv1.Isolation, string) {
	if r.accounts != nil {
		// The stream was just read or written through the namespace's account.
		return hubflowv1.IsolationNamespaceAccount, r.accounts.accountKey(namespace)
	}
	if r.issuer != nil {
		return hubflowv1.IsolationSharedAccount, r.issuer.Account()
	}
	return hubflowv1.IsolationSharedAccount, ""
}

// create creates the stream. With mayExist, a stream already there is
// returned as hub.ErrExists with the status untouched, for the caller to
// look at.
func (r *TopicReconciler) create(ctx context.Context, topic *hubflowv1.Topic, desired jetstream.StreamConfig, conds conditions, mayExist bool) error {
	if _, err := r.hub.CreateStream(ctx, desired); err != nil {
		if mayExist && errors.Is(err, hub.ErrExists) {
			return err
		}
		// No stream: status names none.
		topic.Status.StreamName, topic.Status.Subjects = "", nil
		return hubFailure(conds, r.explain(ctx, desired, err))
	}
	r.served(topic, desired)
	if isReady(topic.Status.Conditions) || meta.FindStatusCondition(topic.Status.Conditions, ConditionStreamRecreated) != nil {
		// The stream existed and was deleted behind hubflow's back: its
		// messages are gone. Recreating it restores the flow, not the data.
		// The time makes every recreation a status change, which wakes the
		// Topic's consumers to recreate their durables.
		conds.set(ConditionStreamRecreated, true, ReasonStreamRecreated,
			"stream %s was deleted outside hubflow and recreated empty at %s; the messages it held are lost",
			desired.Name, time.Now().UTC().Format(time.RFC3339))
		r.recorder.Eventf(topic, nil, corev1.EventTypeWarning, ReasonStreamRecreated, "Create",
			"stream %s was deleted outside hubflow and has been recreated empty: its messages are lost", desired.Name)
	}
	// A first creation gets no event: the Ready condition says it, with
	// its time, and an event per new Topic would be a third of the writes
	// a large apply causes.
	conds.ready("stream %s serves %s", desired.Name, strings.Join(desired.Subjects, ", "))
	return nil
}

// register fills in the hub registry view: who publishes and reads through
// this Topic, and the end-to-end semantic its consumers can get.
// register fills in the registry view and returns the longest retry
// horizon of the registered ExactlyOnce Producers, and whose it is.
func (r *TopicReconciler) register(ctx context.Context, topic *hubflowv1.Topic) (time.Duration, string, error) {
	var producers hubflowv1.ProducerList
	var consumers hubflowv1.ConsumerList
	if err := errors.Join(
		listRegistered(ctx, r.client, topic.Namespace, topic.Name, &producers),
		listRegistered(ctx, r.client, topic.Namespace, topic.Name, &consumers),
	); err != nil {
		return 0, "", err
	}
	topic.Status.Producers = registrations(names(&producers))
	topic.Status.Consumers = registrations(names(&consumers))
	var sources hubflowv1.ConsumerList
	if err := r.client.List(ctx, &sources, client.InNamespace(topic.Namespace), client.MatchingFields{deadLetterIndex: topic.Name}); err != nil {
		return 0, "", err
	}
	topic.Status.DeadLetterSources = nil
	if len(sources.Items) > 0 {
		topic.Status.DeadLetterSources = registrations(names(&sources))
	}
	topicSem := semantic.TopicSemantic(topic)
	topic.Status.EffectiveSemantic = hubflowv1.StatusSemantic(semantic.Effective(topicSem, producerSemantics(topicSem, producers.Items)))
	var horizon time.Duration
	var holder string
	for i := range producers.Items {
		p := &producers.Items[i]
		// Registered, not only Ready: a Producer refused after the Topic
		// changed still has workloads publishing with its earlier binding.
		if sem, err := semantic.Resolve(topicSem, p.Spec.Semantic); err != nil || sem != hubflowv1.ExactlyOnce || !p.DeletionTimestamp.IsZero() {
			continue
		}
		if h := semantic.ProducerRetryHorizon(p); h > horizon {
			horizon, holder = h, p.Name
		}
	}
	return horizon, holder, nil
}

func registrations(names []string) *hubflowv1.Registrations {
	slices.Sort(names)
	return &hubflowv1.Registrations{
		Count: int32(len(names)),
		Names: names[:min(len(names), hubflowv1.MaxRegisteredNames)],
	}
}

// delete honours the deletion policy: Retain keeps the stream and its
// messages (and says so), Delete removes them, but only from a stream this
// Topic owns: one owned elsewhere, or by no one, is left alone.
func (r *TopicReconciler) delete(ctx context.Context, topic *hubflowv1.Topic) error {
	if !controllerutil.ContainsFinalizer(topic, finalizer) {
		return nil
	}
	stream := semantic.StreamName(topic.Namespace, topic.Name)
	if topic.Spec.DeletionPolicy == hubflowv1.DeleteOnDelete {
		if err := r.deleteOwned(ctx, topic, stream); err != nil {
			before := topic.DeepCopy()
			hubFailure(newConditions(&topic.Status.CommonStatus, topic.Generation), err)
			return errors.Join(err, patchStatus(ctx, r.client, topic, before, topic.Status, before.Status))
		}
	} else {
		r.recorder.Eventf(topic, nil, corev1.EventTypeNormal, "StreamRetained", "Delete",
			"kept stream %s and its messages (deletionPolicy Retain); delete it with the nats CLI when no longer needed", stream)
	}
	return removeFinalizer(ctx, r.client, topic)
}

// explain adds to a subject-overlap refusal which stream holds the subjects
// and who owns it: the server's error says only that some stream does.
func (r *TopicReconciler) explain(ctx context.Context, desired jetstream.StreamConfig, err error) error {
	if code, ok := hub.APICode(err); !ok || code != hub.CodeSubjectOverlap {
		return err
	}
	streams, lerr := r.hub.ListStreams(ctx)
	if lerr != nil {
		return err
	}
	for _, s := range streams {
		if s.Config.Name == desired.Name {
			continue
		}
		subject, ok := semantic.OverlapsAny(desired.Subjects, s.Config.Subjects)
		if !ok {
			continue
		}
		owner := "not created by hubflow"
		if o := s.Config.Metadata[semantic.OwnerKey]; o != "" {
			owner = "owned by " + o
		}
		return fmt.Errorf("%w: subject %s is held by stream %s (%s)", err, subject, s.Config.Name, owner)
	}
	return err
}

// errStalled marks a failure only a change can fix (see failureKinds):
// the reconcilers do not retry it as an error (no log line with a stack
// trace on every backoff step); a spec change reconciles again, and so
// does a recheck at stalledRecheck, for changes elsewhere (another
// Topic deleted, the hub reconfigured) that no watch reports.
var errStalled = errors.New("stalled until something changes")

// stalledRecheck is the result of a reconcile that ended in errStalled.
var stalledRecheck = ctrl.Result{RequeueAfter: time.Minute}

// deleteOwned deletes the stream if the Topic owns it; a missing stream is
// already deleted.
func (r *TopicReconciler) deleteOwned(ctx context.Context, topic *hubflowv1.Topic, stream string) error {
	info, err := r.hub.Stream(ctx, stream)
	switch {
	case errors.Is(err, hub.ErrNotFound):
		return nil
	case err != nil:
		return err
	}
	if semantic.OwnershipOf(info.Config.Metadata, r.cluster, topic.Namespace, topic.Name) != semantic.Owned {
		r.recorder.Eventf(topic, nil, corev1.EventTypeWarning, "StreamLeftAlone", "Delete",
			"did not delete stream %s (deletionPolicy Delete): it belongs to %q, not to this Topic", stream, semantic.OwnerOf(info.Config.Metadata))
		return nil
	}
	if err := r.hub.DeleteStream(ctx, stream); err != nil {
		return err
	}
	r.recorder.Eventf(topic, nil, corev1.EventTypeNormal, "StreamDeleted", "Delete",
		"deleted stream %s and its messages (deletionPolicy Delete)", stream)
	return nil
}

// hubFailure records a failed JetStream call in the conditions and returns
// the error for a retry (errStalled for a permanent refusal). A refusal by
// the server leaves an existing stream usable; an unreachable hub makes
// nothing usable.
func hubFailure(conds conditions, err error) error {
	if errors.Is(err, hub.ErrUnreachable) {
		conds.failed(false, ReasonHubUnreachable, "cannot reach NATS JetStream: %v; retrying", err)
		return err
	}
	reason := hubErrorReason(err)
	if kindOf(reason) == transient {
		conds.failed(false, reason, "NATS JetStream failed: %v; retrying", err)
		return err
	}
	conds.failed(false, reason, "NATS JetStream refused: %v", err)
	return fmt.Errorf("%w: %w", errStalled, err)
}

// hubErrorReason names a JetStream failure. A 400 answer refuses the request
// as sent (only a change helps); anything else (a 5xx, a leader election in
// progress, an error without an API code) may pass with time.
func hubErrorReason(err error) string {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return ReasonHubError
	}
	switch {
	case apiErr.ErrorCode == hub.CodeReplicasNotSupported:
		return ReasonReplicasNeedCluster
	case apiErr.ErrorCode == hub.CodeSubjectOverlap:
		return ReasonSubjectsOverlap
	case apiErr.Code == 400:
		return ReasonHubRejected
	}
	return ReasonHubError
}

// updateRefused records a failed update of a stream or durable that exists:
// a refusal leaves it serving with its previous settings, so it stays Ready
// (its registrations stay usable and their credentials keep being renewed)
// and only Synced names the refusal. An unreachable hub is a hubFailure.
func updateRefused(conds conditions, kind, name string, err error) error {
	if errors.Is(err, hub.ErrUnreachable) {
		return hubFailure(conds, err)
	}
	reason := hubErrorReason(err)
	conds.failed(true, reason, "NATS JetStream refused the update: %v; %s %s keeps serving with its previous settings", err, kind, name)
	if kindOf(reason) == transient {
		return err
	}
	return fmt.Errorf("%w: %w", errStalled, err)
}

func joinChanges(cs semantic.Changes) string {
	parts := make([]string, len(cs))
	for i, c := range cs {
		parts[i] = c.String()
	}
	return strings.Join(parts, "; ")
}

// ensureFinalizer and removeFinalizer write the finalizer list with the
// resourceVersion they read: a merge patch replaces the whole list, so
// without the lock a finalizer another controller added in between would be
// dropped. A conflict is returned; the retry reads the object again.
func ensureFinalizer(ctx context.Context, c client.Client, obj client.Object) error {
	if controllerutil.ContainsFinalizer(obj, finalizer) {
		return nil
	}
	before := obj.DeepCopyObject().(client.Object)
	controllerutil.AddFinalizer(obj, finalizer)
	if err := c.Patch(ctx, obj, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("adding finalizer: %w", err)
	}
	return nil
}

// keepFinalizerFor adds the finalizer to a Topic with deletionPolicy
// Delete and takes it off one whose policy became Retain.
func (r *TopicReconciler) keepFinalizerFor(ctx context.Context, topic *hubflowv1.Topic) error {
	if topic.Spec.DeletionPolicy == hubflowv1.DeleteOnDelete {
		return ensureFinalizer(ctx, r.client, topic)
	}
	if controllerutil.ContainsFinalizer(topic, finalizer) {
		return removeFinalizer(ctx, r.client, topic)
	}
	return nil
}

// retryConflict retries a reconcile whose finalizer write met a newer
// version of the object at once and without an error: the object changed
// since the cache read it, which is routine, not something to log with a
// stack trace.
func retryConflict(err error) (ctrl.Result, error) {
	if err != nil && onlyConflicts(err) {
		return conflictRetry, nil
	}
	return ctrl.Result{}, err
}

// onlyConflicts: err is a conflict, or errors joined that all are, so no
// other failure is hidden by the quiet retry.
func onlyConflicts(err error) bool {
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range joined.Unwrap() {
			if !onlyConflicts(e) {
				return false
			}
		}
		return true
	}
	return apierrors.IsConflict(err)
}

// conflictRetry gives the cache a moment to see the newer version.
var conflictRetry = ctrl.Result{RequeueAfter: 50 * time.Millisecond}

func removeFinalizer(ctx context.Context, c client.Client, obj client.Object) error {
	before := obj.DeepCopyObject().(client.Object)
	controllerutil.RemoveFinalizer(obj, finalizer)
	if err := c.Patch(ctx, obj, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("removing finalizer: %w", err)
	}
	return nil
}
