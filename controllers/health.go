package controllers

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/internal/semantic"
)

// The kstatus conditions (sigs.k8s.io/cli-utils, used by Flux, kpt and
// cli-utils' appliers to decide whether a rollout is done). They are
// "abnormal-true": present and True only while the object is not Current.
const (
	// ConditionReconciling is True while hubflow is still converging, or
	// waiting on something that will change without a spec edit (the hub
	// coming back, the Topic being created or becoming ready).
	ConditionReconciling = "Reconciling"
	// ConditionStalled is True when only a change (to this spec, another
	// object's, or the hub's configuration) can make progress. Its reason
	// and message are those of the failure.
	ConditionStalled = "Stalled"
)

// failureKind says whether waiting can fix a failure.
type failureKind int

const (
	transient failureKind = iota + 1
	permanent
)

// failureKinds classifies every reason hubflow puts in a False Ready or
// Synced condition. TestEveryFailureReasonIsClassified keeps it complete.
var failureKinds = map[string]failureKind{
	ReasonHubUnreachable: transient,
	ReasonHubError:       transient, // a 5xx or an answer without an API code: may pass
	ReasonTopicNotFound:  transient, // applied before its Topic: converges once it exists
	ReasonTopicNotReady:  transient, // follows the Topic, whose own status says why
	// follows the dead-letter Topic; the Consumer serves meanwhile
	ReasonDeadLetterTopicNotReady: transient,

	ReasonHubRejected:                        permanent,
	ReasonImmutableChange:                    permanent,
	ReasonOwnedElsewhere:                     permanent,
	ReasonNotOwned:                           permanent, // adoption is an explicit opt-in: spec.adoptExisting
	ReasonDuplicateWindowHeld:                permanent, // until the Producer's publish policy or the window changes
	ReasonReplicasNeedCluster:                permanent,
	ReasonSubjectsOverlap:                    permanent,
	ReasonBindingConflict:                    permanent,
	semantic.ReasonSemanticStrongerThanTopic: permanent,
	semantic.ReasonSubjectOutsideTopic:       permanent,
	semantic.ReasonRetryHorizonTooLong:       permanent,
	semantic.ReasonSubjectOutsideNamespace:   permanent,
	ReasonDeadLetterNeedsAcks:                permanent,
	ReasonDeadLetterNeedsSharedAccount:       permanent,
}

// kindOf treats an unclassified reason as transient: an object is never
// declared failed for good by mistake; the test above catches the omission.
func kindOf(reason string) failureKind {
	if k, ok := failureKinds[reason]; ok {
		return k
	}
	return transient
}

// setProgress derives Reconciling and Stalled from one failure (or none, when
// reason is ""), so kstatus computes InProgress, Failed or Current.
func setProgress(conds *[]metav1.Condition, generation int64, reason, message string) {
	if reason == "" {
		meta.RemoveStatusCondition(conds, ConditionReconciling)
		meta.RemoveStatusCondition(conds, ConditionStalled)
		return
	}
	set, clear := ConditionReconciling, ConditionStalled
	if kindOf(reason) == permanent {
		set, clear = ConditionStalled, ConditionReconciling
	}
	meta.RemoveStatusCondition(conds, clear)
	meta.SetStatusCondition(conds, metav1.Condition{
		Type: set, Status: metav1.ConditionTrue, Reason: reason, Message: message, ObservedGeneration: generation,
	})
}

// failure is the first False condition of Ready and Synced, if any.
func failure(conds []metav1.Condition) *metav1.Condition {
	for _, typ := range []string{hubflowv1.ConditionReady, hubflowv1.ConditionSynced} {
		if c := meta.FindStatusCondition(conds, typ); c != nil && c.Status == metav1.ConditionFalse {
			return c
		}
	}
	return nil
}

// warnOnFailure emits (and reports whether it emitted) one Warning event when an object enters a failure, or
// moves from one failure reason to another: on the transition, not on every
// retry, so a long outage does not flood the event stream.
func warnOnFailure(recorder events.EventRecorder, obj runtime.Object, before, after []metav1.Condition) bool {
	now := failure(after)
	if now == nil {
		return false
	}
	if was := failure(before); was != nil && was.Type == now.Type && was.Reason == now.Reason {
		return false
	}
	what := "not ready"
	if now.Type == hubflowv1.ConditionSynced {
		what = "not as declared"
	}
	recorder.Eventf(obj, nil, corev1.EventTypeWarning, now.Reason, "Reconcile", "%s", fmt.Sprintf("%s: %s", what, now.Message))
	return true
}
