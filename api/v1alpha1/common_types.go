package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// DeliverySemantic is the promise a flow makes about loss and duplicates.
// +kubebuilder:validation:Enum=AtMostOnce;AtLeastOnce;ExactlyOnce
type DeliverySemantic string

const (
	// AtMostOnce delivers a message zero or one time: no duplicates, loss possible.
	AtMostOnce DeliverySemantic = "AtMostOnce"
	// AtLeastOnce delivers a message one or more times: no loss, duplicates possible.
	AtLeastOnce DeliverySemantic = "AtLeastOnce"
	// ExactlyOnce delivers a message with neither loss nor duplicates, within the
	// topic's duplicate window and given an idempotent handler (JetStream's
	// "effectively once").
	ExactlyOnce DeliverySemantic = "ExactlyOnce"
)

// StatusSemantic is a semantic as a status reports it: one of the three
// delivery semantics, or None, so kubectl's columns are never blank.
// +kubebuilder:validation:Enum=AtMostOnce;AtLeastOnce;ExactlyOnce;None
type StatusSemantic string

// SemanticNone, in status.effectiveSemantic: the object is not Ready, so
// nothing is delivered through it now. In status.semantic: the object
// declares no semantic and has no Topic to inherit one from.
const SemanticNone StatusSemantic = "None"

// Strength orders the semantics: a flow may weaken a semantic, never strengthen it.
func (s DeliverySemantic) Strength() int {
	switch s {
	case AtMostOnce:
		return 1
	case AtLeastOnce:
		return 2
	case ExactlyOnce:
		return 3
	}
	return 0
}

// TopicReference names a Topic in the same namespace.
type TopicReference struct {
	// Name of the Topic, in the namespace of the referring object.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// BindingReference names the Secret a Producer or Consumer binding is written to.
type BindingReference struct {
	// Name of the binding Secret.
	Name string `json:"name"`
}

// Condition types shared by every kind.
const (
	// ConditionReady is True when the broker object exists and is usable as declared.
	ConditionReady = "Ready"
	// ConditionSynced is True when the last reconcile applied the spec without error.
	ConditionSynced = "Synced"
	// ConditionCredentialsIssued is True when a Producer's or Consumer's
	// binding holds NATS credentials, with their expiry in the message. It
	// is False with reason HubWithoutAuth when the hub runs without auth and
	// the binding carries none: that is not an error.
	ConditionCredentialsIssued = "CredentialsIssued"
)

// CommonStatus is the part of the status every kind has.
type CommonStatus struct {
	// ObservedGeneration is the metadata.generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions are Ready (the broker object is usable) and Synced (the last
	// reconcile succeeded), each with a CamelCase reason and a message;
	// Producers and Consumers also have CredentialsIssued.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}
