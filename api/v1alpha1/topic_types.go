package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// StorageType is where a Topic's stream keeps its messages.
// +kubebuilder:validation:Enum=File;Memory
type StorageType string

const (
	// FileStorage keeps messages on disk; they survive a server restart.
	FileStorage StorageType = "File"
	// MemoryStorage keeps messages in memory; a server restart loses them.
	MemoryStorage StorageType = "Memory"
)

// DiscardPolicy says what a full stream does with a new message.
// +kubebuilder:validation:Enum=Old;New
type DiscardPolicy string

const (
	// DiscardOld evicts the oldest messages to make room: producers never see an error.
	DiscardOld DiscardPolicy = "Old"
	// DiscardNew refuses new messages: producers get an error instead of silent eviction.
	DiscardNew DiscardPolicy = "New"
)

// DeletionPolicy says what happens to the stream when its Topic is deleted.
// +kubebuilder:validation:Enum=Retain;Delete
type DeletionPolicy string

const (
	// RetainOnDelete keeps the stream and its messages when the Topic is deleted.
	RetainOnDelete DeletionPolicy = "Retain"
	// DeleteOnDelete deletes the stream and every message in it with the Topic.
	DeleteOnDelete DeletionPolicy = "Delete"
)

// RetentionLimits bound how much a Topic keeps. An unset limit is unlimited.
type RetentionLimits struct {
	// MaxAge is how long a message is kept, as a Go duration such as "24h".
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$') || self.matches('^[0-9]+d$')",message="must be a Go duration such as 90s, 30m or 24h (units h, m, s, ms, us, ns; no sign)"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^[0-9]+d$')",message="Go durations have no days: give hours, 24h per day (use 168h for 7d, 24h for 1d)"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$') || (duration(self) >= duration('1s'))",message="must be at least 1s"
	MaxAge *metav1.Duration `json:"maxAge,omitempty"`

	// MaxBytes is the most the stream stores, as a quantity such as "10Gi".
	// +optional
	// +kubebuilder:validation:XValidation:rule="!string(self).matches('^[0-9]+([.][0-9]+)?[kKMGTPE]B$')",message="quantities count bytes without a B: use 10G (10^9 bytes) or 10Gi (2^30 bytes) for 10GB, 1M or 1Mi for 1MB"
	// +kubebuilder:validation:XValidation:rule="!isQuantity(string(self)) || (quantity(string(self)).isInteger() && quantity(string(self)).compareTo(quantity('1')) >= 0)",message="must be a whole number of bytes, at least 1"
	MaxBytes *resource.Quantity `json:"maxBytes,omitempty"`

	// MaxMessages is the most messages the stream stores.
	// +optional
	// +kubebuilder:validation:Minimum=1
	MaxMessages *int64 `json:"maxMessages,omitempty"`

	// MaxMessageSize is the largest message the stream accepts, as a quantity such as "1Mi".
	// +optional
	// +kubebuilder:validation:XValidation:rule="!string(self).matches('^[0-9]+([.][0-9]+)?[kKMGTPE]B$')",message="quantities count bytes without a B: use 10G (10^9 bytes) or 10Gi (2^30 bytes) for 10GB, 1M or 1Mi for 1MB"
	// +kubebuilder:validation:XValidation:rule="!isQuantity(string(self)) || (quantity(string(self)).isInteger() && quantity(string(self)).compareTo(quantity('1')) >= 0 && quantity(string(self)).compareTo(quantity('2147483647')) <= 0)",message="must be a whole number of bytes between 1 and 2147483647"
	MaxMessageSize *resource.Quantity `json:"maxMessageSize,omitempty"`
}

// TopicSpec declares a stream of messages and the strongest delivery semantic it offers.
//
// +kubebuilder:validation:XValidation:rule="!has(self.storage) || self.storage != 'Memory' || (has(self.semantic) && self.semantic == 'AtMostOnce')",fieldPath=".storage",reason=FieldValueForbidden,message="Memory storage is only allowed with semantic AtMostOnce: AtLeastOnce and ExactlyOnce promise no loss, and a restart loses what memory holds"
// +kubebuilder:validation:XValidation:rule="!has(self.duplicateWindow) || self.semantic == 'ExactlyOnce'",fieldPath=".duplicateWindow",reason=FieldValueForbidden,message="duplicateWindow applies only to semantic ExactlyOnce"
// +kubebuilder:validation:XValidation:rule="!has(self.duplicateWindow) || !has(self.retention) || !has(self.retention.maxAge) || duration(self.duplicateWindow) <= duration(self.retention.maxAge)",fieldPath=".duplicateWindow",reason=FieldValueInvalid,message="duplicateWindow must not be longer than retention.maxAge: the stream cannot remember message ids longer than it keeps messages"
// +kubebuilder:validation:XValidation:rule="self.semantic != 'ExactlyOnce' || has(self.duplicateWindow) || !has(self.retention) || !has(self.retention.maxAge) || duration(self.retention.maxAge) >= duration('2m')",fieldPath=".retention.maxAge",reason=FieldValueInvalid,message="retention.maxAge is shorter than the default 2m duplicate window of ExactlyOnce: set duplicateWindow no longer than maxAge"
// +kubebuilder:validation:XValidation:rule="!has(self.discard) || self.discard == 'New' || self.semantic == 'AtMostOnce'",fieldPath=".discard",reason=FieldValueForbidden,message="discard Old silently evicts stored messages when a limit is reached, which breaks the no-loss promise of AtLeastOnce and ExactlyOnce: use New or semantic AtMostOnce"
type TopicSpec struct {
	// Semantic is the strongest delivery semantic this Topic offers; Producers and
	// Consumers may declare the same or a weaker one.
	// +optional
	// It cannot cross the AtMostOnce boundary after creation: Consumers that
	// inherit it would need another ack policy, which JetStream cannot change
	// on a durable, so their binding and durable would disagree.
	// +kubebuilder:default=AtLeastOnce
	// +kubebuilder:validation:XValidation:rule="(self == 'AtMostOnce') == (oldSelf == 'AtMostOnce')",message="semantic cannot change between AtMostOnce and an acknowledged semantic after creation: the durables of Consumers that inherit it would need another ack policy, which JetStream cannot change; create a new Topic"
	Semantic DeliverySemantic `json:"semantic,omitempty"`

	// Subjects the Topic's stream captures. Defaults to "<namespace>.<name>" and
	// "<namespace>.<name>.>". A subject starts with the namespace's token
	// ("<namespace>.…"), so no namespace can take another's subjects; "*"
	// matches one token and a final ">" matches the rest.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=255
	// +kubebuilder:validation:items:Pattern=`^[^.\s*>$][^.\s*>]*(\.([^.\s*>]+|\*))*(\.>)?$`
	// +kubebuilder:validation:items:XValidation:rule="!self.startsWith('_INBOX')",message="subjects starting with _INBOX are reserved for replies and workloads' inboxes"
	Subjects []string `json:"subjects,omitempty"`

	// Storage is File (survives restarts) or Memory (AtMostOnce only). Immutable.
	// +optional
	// +kubebuilder:default=File
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="storage is immutable: JetStream cannot change a stream's storage; create a new Topic"
	Storage StorageType `json:"storage,omitempty"`

	// Replicas is how many servers keep a copy of each message; 3 is recommended
	// for AtLeastOnce and ExactlyOnce. More than 1 needs a clustered JetStream.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=5
	Replicas int32 `json:"replicas,omitempty"`

	// Retention bounds how long and how much the Topic keeps.
	// +optional
	Retention *RetentionLimits `json:"retention,omitempty"`

	// Discard is what a full stream does: Old evicts the oldest messages
	// (AtMostOnce only), New refuses the new one so its producer sees an error.
	// Defaults to Old for AtMostOnce and New otherwise.
	// +optional
	Discard DiscardPolicy `json:"discard,omitempty"`

	// DuplicateWindow is how long the stream remembers message ids to drop
	// duplicate publishes (ExactlyOnce only, default 2m). It must cover the
	// producers' retry horizon and be no longer than retention.maxAge.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$') || self.matches('^[0-9]+d$')",message="must be a Go duration such as 90s, 30m or 24h (units h, m, s, ms, us, ns; no sign)"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^[0-9]+d$')",message="Go durations have no days: give hours, 24h per day (use 168h for 7d, 24h for 1d)"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$') || (duration(self) >= duration('1s'))",message="must be at least 1s"
	DuplicateWindow *metav1.Duration `json:"duplicateWindow,omitempty"`

	// DeletionPolicy is what happens to the stream and its messages when the
	// Topic is deleted: Retain (default) keeps them, Delete removes them.
	// +optional
	// +kubebuilder:default=Retain
	DeletionPolicy DeletionPolicy `json:"deletionPolicy,omitempty"`

	// AdoptExisting lets hubflow take over a stream of this Topic's name that
	// exists without hubflow's owner metadata (made by hand or by another
	// tool): its settings are then rewritten to this spec, and the Adopted
	// condition records it. Without it such a stream is left untouched and
	// the Topic is not Ready. A stream owned by another hubflow object or
	// cluster is never adopted.
	// +optional
	AdoptExisting bool `json:"adoptExisting,omitempty"`
}

// Isolation is what separates namespaces on the hub.
// +kubebuilder:validation:Enum=NamespaceAccount;SharedAccount
type Isolation string

const (
	IsolationNamespaceAccount Isolation = "NamespaceAccount"
	IsolationSharedAccount    Isolation = "SharedAccount"
)

// TopicStatus is what the operator observed of a Topic's stream.
type TopicStatus struct {
	CommonStatus `json:",inline"`

	// StreamName is the JetStream stream backing this Topic.
	// +optional
	StreamName string `json:"streamName,omitempty"`

	// Subjects are the subjects the stream captures, defaults resolved.
	// +optional
	// +listType=atomic
	Subjects []string `json:"subjects,omitempty"`

	// Isolation says what keeps other namespaces away from this Topic's
	// stream: NamespaceAccount, a NATS account of the namespace's own
	// (--tenancy=namespace), or SharedAccount, one account for every
	// namespace, where per-user permissions are the only fence and a hostile
	// workload of another namespace is not kept out (docs/tenancy.md).
	// +optional
	Isolation Isolation `json:"isolation,omitempty"`

	// Account is the public key of the NATS account the stream lives in,
	// when the manager knows it (it mints credentials).
	// +optional
	Account string `json:"account,omitempty"`

	// Producers registered with this Topic.
	// +optional
	Producers *Registrations `json:"producers,omitempty"`

	// Consumers registered with this Topic.
	// +optional
	Consumers *Registrations `json:"consumers,omitempty"`

	// DeadLetterSources are the Consumers that set their dead letters aside
	// in this Topic.
	// +optional
	DeadLetterSources *Registrations `json:"deadLetterSources,omitempty"`

	// EffectiveSemantic is the strongest promise a consumer of this Topic
	// gets end to end: the Topic's semantic, weakened by the weakest
	// registered producer (one that sends no message ids cannot be deduplicated);
	// None while the Topic is not Ready.
	// +optional
	EffectiveSemantic StatusSemantic `json:"effectiveSemantic,omitempty"`
}

// MaxRegisteredNames bounds the names a Topic's status lists per kind, so a
// Topic with thousands of consumers keeps a small object.
const MaxRegisteredNames = 10

// Registrations counts the Producers or Consumers of a Topic.
type Registrations struct {
	// Count of registered objects.
	Count int32 `json:"count"`
	// Names of the first registered objects in name order, at most 10.
	// +optional
	// +listType=atomic
	Names []string `json:"names,omitempty"`
}

// Topic is a stream of messages on the hub that producers publish to and
// consumers read from, with a declared delivery semantic.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=hubflow,shortName=hft
// +kubebuilder:printcolumn:name="Semantic",type=string,JSONPath=`.spec.semantic`
// +kubebuilder:printcolumn:name="Stream",type=string,JSONPath=`.status.streamName`
// +kubebuilder:printcolumn:name="Effective",type=string,JSONPath=`.status.effectiveSemantic`
// +kubebuilder:printcolumn:name="Producers",type=integer,JSONPath=`.status.producers.count`
// +kubebuilder:printcolumn:name="Consumers",type=integer,JSONPath=`.status.consumers.count`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Storage",type=string,priority=1,JSONPath=`.spec.storage`
// +kubebuilder:printcolumn:name="Replicas",type=integer,priority=1,JSONPath=`.spec.replicas`
// +kubebuilder:printcolumn:name="Isolation",type=string,priority=1,JSONPath=`.status.isolation`
// +kubebuilder:printcolumn:name="Synced",type=string,JSONPath=`.status.conditions[?(@.type=="Synced")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,priority=1,JSONPath=`.status.conditions[?(@.type=="Synced")].reason`
// +kubebuilder:printcolumn:name="Message",type=string,priority=1,JSONPath=`.status.conditions[?(@.type=="Synced")].message`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// The stream is named "<namespace>_<name>" and JetStream holds names of at
// most 255 bytes; a namespace has at most 63, so a Topic's name has at most
// 191 (checked here because CEL sees the name but not the namespace).
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 191",reason=FieldValueInvalid,message="metadata.name must be at most 191 characters: the Topic's JetStream stream is named <namespace>_<name>, and JetStream holds names of at most 255 bytes"
type Topic struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	// +kubebuilder:default={}
	Spec TopicSpec `json:"spec,omitempty"`
	// +optional
	Status TopicStatus `json:"status,omitempty"`
}

// TopicList is a list of Topics.
// +kubebuilder:object:root=true
type TopicList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Topic `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Topic{}, &TopicList{})
}
