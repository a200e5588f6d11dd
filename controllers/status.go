package controllers

import (
	"context"
	"fmt"
	"sync"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/internal/semantic"
)

// Condition reasons. Each names a state a user can act on.
const (
	ReasonReady               = "Ready"
	ReasonReconciled          = "Reconciled"
	ReasonHubUnreachable      = "HubUnreachable"
	ReasonHubRejected         = "HubRejected"
	ReasonHubError            = "HubError"
	ReasonImmutableChange     = "ImmutableChange"
	ReasonOwnedElsewhere      = "OwnedElsewhere"
	ReasonNotOwned            = "NotOwned"
	ReasonAdopted             = "Adopted"
	ReasonDuplicateWindowHeld = "DuplicateWindowHeld"
	ReasonTopicNotFound       = "TopicNotFound"
	ReasonTopicNotReady       = "TopicNotReady"
	ReasonReplicasNeedCluster = "ReplicasNeedCluster"
	ReasonSubjectsOverlap     = "SubjectsOverlap"
	ReasonStreamRecreated     = "StreamRecreatedEmpty"
	// Dead letters (controllers/deadletter.go).
	ReasonDeadLetterTopicNotReady      = "DeadLetterTopicNotReady"
	ReasonDeadLetterNeedsAcks          = "DeadLetterNeedsAcks"
	ReasonDeadLetterNeedsSharedAccount = "DeadLetterNeedsSharedAccount"
	ReasonDeadLettered                 = "DeadLettered"
	ReasonDeadLetterStuck              = "DeadLetterStuck"
	ReasonDeadLettersReplayed          = "DeadLettersReplayed"
	ReasonReplayFailed                 = "DeadLetterReplayFailed"
)

// ConditionStreamRecreated is True once a Topic's stream was found deleted
// behind hubflow's back and recreated empty: the messages it held are lost,
// and someone should know. It stays until the Topic is recreated.
const ConditionStreamRecreated = "StreamRecreated"

// ConditionAdopted is True on a Topic or Consumer that took over a stream or
// durable it did not create, by its spec's adoptExisting opt-in.
const ConditionAdopted = "Adopted"

// finalizer guards the stream of a Topic with deletionPolicy Delete, so
// deleting the Topic can delete the stream first. Consumers carried it in
// earlier releases; it is taken off them (their durables are collected by
// owner metadata, see collect.go).
const finalizer = "hubflow.io/jetstream"

// conditions sets Ready and Synced for one reconcile outcome; setting any
// condition also records the generation the status now describes.
type conditions struct {
	status     *hubflowv1.CommonStatus
	generation int64
}

func newConditions(status *hubflowv1.CommonStatus, generation int64) conditions {
	return conditions{status: status, generation: generation}
}

func (c conditions) set(typ string, ok bool, reason, format string, args ...any) {
	status := metav1.ConditionFalse
	if ok {
		status = metav1.ConditionTrue
	}
	c.status.ObservedGeneration = c.generation
	meta.SetStatusCondition(&c.status.Conditions, metav1.Condition{
		Type: typ, Status: status, Reason: reason,
		Message: fmt.Sprintf(format, args...), ObservedGeneration: c.generation,
	})
}

// ready marks the object usable and its last reconcile successful.
func (c conditions) ready(message string, args ...any) {
	c.set(hubflowv1.ConditionReady, true, ReasonReady, message, args...)
	c.set(hubflowv1.ConditionSynced, true, ReasonReconciled, "the spec is applied")
	setProgress(&c.status.Conditions, c.generation, "", "")
}

// failed marks the last reconcile failed; ready says whether the broker
// object is still usable despite that.
func (c conditions) failed(ready bool, reason, message string, args ...any) {
	c.set(hubflowv1.ConditionSynced, false, reason, message, args...)
	setProgress(&c.status.Conditions, c.generation, reason, fmt.Sprintf(message, args...))
	if ready {
		c.set(hubflowv1.ConditionReady, true, ReasonReady, "usable, but not as declared: see the Synced condition")
		return
	}
	c.set(hubflowv1.ConditionReady, false, reason, message, args...)
}

// adopted shows an adoption recorded in the server object's metadata. It is
// read from the server each time, not remembered, so a lost status write
// cannot hide it.
func adopted(c conditions, kind, name string, metadata map[string]string) {
	if at := metadata[semantic.AdoptedKey]; at != "" {
		c.set(ConditionAdopted, true, ReasonAdopted, "%s %s existed without an owner and was adopted at %s (spec.adoptExisting)", kind, name, at)
	}
}

func isReady(conds []metav1.Condition) bool {
	return meta.IsStatusConditionTrue(conds, hubflowv1.ConditionReady)
}

func isSynced(conds []metav1.Condition) bool {
	return meta.IsStatusConditionTrue(conds, hubflowv1.ConditionSynced)
}

// patchStatus writes obj's status when it differs from before's: one write
// per reconcile at most, none when nothing changed (an idle hub makes no
// API-server writes). A merge patch needs no resourceVersion, so a
// concurrent spec edit does not make it fail.
//
// Nor is one written from a copy the cache has not updated since this
// manager's own last write: the reconcile a Secret or durable event starts
// moments after a write would otherwise write the same status again (a
// third of the Consumers in a large apply). That write's watch event is on
// its way and reconciles the object once more, with the copy it wrote.
func patchStatus(ctx context.Context, c client.Client, obj, before client.Object, status, beforeStatus any) error {
	uid, from := before.GetUID(), before.GetResourceVersion()
	if last, ok := statusWrites.Load(uid); ok {
		if last == from {
			return nil
		}
		statusWrites.Delete(uid)
	}
	if equality.Semantic.DeepEqual(status, beforeStatus) {
		return nil
	}
	if err := c.Status().Patch(ctx, obj, client.MergeFrom(before)); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("writing status: %w", err)
	}
	if uid != "" && from != "" && obj.GetResourceVersion() != from {
		statusWrites.Store(uid, from)
	}
	return nil
}

// statusWrites holds, by object UID, the resourceVersion the manager's last
// status write was made from, until the cache shows a newer one.
var statusWrites sync.Map
