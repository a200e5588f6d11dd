package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// DeliverPolicy is where a new consumer starts reading its Topic.
// +kubebuilder:validation:Enum=All;New;Last;LastPerSubject
type DeliverPolicy string

const (
	// DeliverAll starts from the oldest message the Topic keeps.
	DeliverAll DeliverPolicy = "All"
	// DeliverNew starts with messages published after the consumer is created.
	DeliverNew DeliverPolicy = "New"
	// DeliverLast starts from the newest message.
	DeliverLast DeliverPolicy = "Last"
	// DeliverLastPerSubject starts from the newest message of each subject.
	DeliverLastPerSubject DeliverPolicy = "LastPerSubject"
)

// ConsumerSpec registers a service that reads a Topic through a durable consumer.
//
// +kubebuilder:validation:XValidation:rule="!has(self.ackWait) || !has(self.semantic) || self.semantic != 'AtMostOnce'",fieldPath=".ackWait",reason=FieldValueForbidden,message="ackWait does not apply to an AtMostOnce consumer: it does not acknowledge, so nothing is redelivered"
// +kubebuilder:validation:XValidation:rule="!has(self.maxDeliver) || !has(self.semantic) || self.semantic != 'AtMostOnce'",fieldPath=".maxDeliver",reason=FieldValueForbidden,message="maxDeliver does not apply to an AtMostOnce consumer: it does not acknowledge, so nothing is redelivered"
// +kubebuilder:validation:XValidation:rule="!has(self.backoff) || !has(self.semantic) || self.semantic != 'AtMostOnce'",fieldPath=".backoff",reason=FieldValueForbidden,message="backoff does not apply to an AtMostOnce consumer: it does not acknowledge, so nothing is redelivered"
// +kubebuilder:validation:XValidation:rule="!has(self.maxAckPending) || !has(self.semantic) || self.semantic != 'AtMostOnce'",fieldPath=".maxAckPending",reason=FieldValueForbidden,message="maxAckPending does not apply to an AtMostOnce consumer: it does not acknowledge, so nothing is redelivered"
// +kubebuilder:validation:XValidation:rule="!has(self.backoff) || !has(self.maxDeliver) || self.maxDeliver > size(self.backoff)",fieldPath=".backoff",reason=FieldValueInvalid,message="backoff must have fewer entries than maxDeliver: ackWait covers the first delivery and each backoff entry one more, so entries past maxDeliver would never be used"
// +kubebuilder:validation:XValidation:rule="!has(self.deadLetter) || !has(self.semantic) || self.semantic != 'AtMostOnce'",fieldPath=".deadLetter",reason=FieldValueForbidden,message="deadLetter does not apply to an AtMostOnce consumer: it does not acknowledge, so no message is ever given up on"
// +kubebuilder:validation:XValidation:rule="!has(self.deadLetter) || self.deadLetter.topicRef.name != self.topicRef.name",fieldPath=".deadLetter.topicRef.name",reason=FieldValueInvalid,message="deadLetter.topicRef must name another Topic than topicRef: a Topic cannot take its own dead letters"
// +kubebuilder:validation:XValidation:rule="!has(self.push) || !has(self.push.ordered) || !self.push.ordered || !has(self.maxAckPending) || self.maxAckPending == 1",fieldPath=".maxAckPending",reason=FieldValueInvalid,message="an ordered push consumer has one message out at a time: leave maxAckPending unset (or 1)"
// +kubebuilder:validation:XValidation:rule="has(self.durableName) == has(oldSelf.durableName)",fieldPath=".durableName",reason=FieldValueForbidden,message="durableName cannot be added or removed after creation: it names the JetStream consumer"
// +kubebuilder:validation:XValidation:rule="has(self.semantic) == has(oldSelf.semantic) && (!has(self.semantic) || (self.semantic == 'AtMostOnce') == (oldSelf.semantic == 'AtMostOnce'))",fieldPath=".semantic",reason=FieldValueForbidden,message="semantic cannot be added, removed, or changed between AtMostOnce and an acknowledged semantic after creation: JetStream cannot change a consumer's ack policy; create a new Consumer"
type ConsumerSpec struct {
	// TopicRef names the Topic this consumer reads. Immutable.
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="topicRef is immutable: register a new Consumer for another Topic"
	TopicRef TopicReference `json:"topicRef"`

	// Semantic the consumer processes with. Defaults to the Topic's; it may be
	// weaker, never stronger.
	// +optional
	Semantic *DeliverySemantic `json:"semantic,omitempty"`

	// FilterSubjects narrows the consumer to some of the Topic's subjects.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=255
	// +kubebuilder:validation:items:Pattern=`^[^.\s*>$][^.\s*>]*(\.([^.\s*>]+|\*))*(\.>)?$`
	FilterSubjects []string `json:"filterSubjects,omitempty"`

	// DurableName names the JetStream durable consumer. Defaults to the
	// Consumer's name. Immutable.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[^.\s*>/\\]+$`
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="durableName is immutable: it names the JetStream consumer"
	DurableName string `json:"durableName,omitempty"`

	// DeliverPolicy is where the consumer starts reading when it is created.
	// Immutable.
	// +optional
	// +kubebuilder:default=All
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="deliverPolicy is immutable: JetStream cannot change where a consumer started"
	DeliverPolicy DeliverPolicy `json:"deliverPolicy,omitempty"`

	// AckWait is how long a delivered message waits for an acknowledgement
	// before it is delivered again. Default 30s.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="!self.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$') || (duration(self) >= duration('1s') && duration(self) <= duration('12h'))",message="must be between 1s and 12h: a tiny ack wait redelivers unacknowledged messages many times a second"
	AckWait *metav1.Duration `json:"ackWait,omitempty"`

	// MaxDeliver bounds how many times a message is delivered. Unset means
	// unlimited, which AtLeastOnce and ExactlyOnce need to lose nothing
	// without a deadLetter Topic: when set without one, a message that fails
	// every delivery is dropped by this consumer; with one, it is moved there.
	// +optional
	// +kubebuilder:validation:Minimum=1
	MaxDeliver *int32 `json:"maxDeliver,omitempty"`

	// Backoff lists the waits for the redeliveries after the first ackWait;
	// the last one repeats. Defaults to ackWait doubled three times
	// (30s, 1m, 2m, 4m with the default ackWait).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:Type=string
	// +kubebuilder:validation:items:MaxLength=32
	// +kubebuilder:validation:items:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:items:XValidation:rule="!self.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$') || (duration(self) >= duration('1s') && duration(self) <= duration('12h'))",message="must be between 1s and 12h"
	Backoff []metav1.Duration `json:"backoff,omitempty"`

	// MaxAckPending bounds how many messages may be delivered and not yet
	// acknowledged. Default 1000.
	// +optional
	// +kubebuilder:validation:Minimum=1
	MaxAckPending *int32 `json:"maxAckPending,omitempty"`

	// DeadLetter names the Topic where messages this consumer gives up on
	// are set aside: one that exhausts maxDeliver, or that the client
	// terminates as poison. hubflow copies each there once, with its payload,
	// its headers and where it came from; the workload does nothing for it.
	// +optional
	DeadLetter *DeadLetter `json:"deadLetter,omitempty"`

	// Push has hubflow's gateway deliver this consumer's messages to an
	// HTTP endpoint, with the consumer's semantic: a 2xx answer
	// acknowledges, a 5xx or a timeout redelivers after the backoff, a 4xx
	// terminates the message (into the deadLetter Topic when one is
	// declared). Each request carries an Idempotency-Key header, the same
	// on every redelivery, so the endpoint can drop repeats.
	// +optional
	Push *PushEndpoint `json:"push,omitempty"`

	// BindingSecretName is the Secret the consumer's binding is written to.
	// Defaults to "<name>-binding".
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	BindingSecretName string `json:"bindingSecretName,omitempty"`

	// AdoptExisting lets hubflow take over a durable of this Consumer's name
	// that exists without hubflow's owner metadata: its settings are then
	// rewritten to this spec, and the Adopted condition records it. Without
	// it such a durable is left untouched and the Consumer is not Ready. A
	// durable owned by another hubflow object or cluster is never adopted.
	// +optional
	AdoptExisting bool `json:"adoptExisting,omitempty"`
}

// PushEndpoint is where the gateway delivers a Consumer's messages.
type PushEndpoint struct {
	// URL the messages are POSTed to.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^https?://[^\s]+$`
	URL string `json:"url"`

	// Timeout of one request; past it the message is redelivered. Default
	// 10s; capped a second below the consumer's ackWait, so a slow answer
	// is not redelivered while it is still awaited.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	Timeout *metav1.Duration `json:"timeout,omitempty"`

	// Concurrency is how many requests each gateway replica has in flight
	// for this consumer. Default 4. Ignored when ordered.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=256
	Concurrency *int32 `json:"concurrency,omitempty"`

	// Ordered delivers one message at a time, in stream order, from one
	// gateway replica at a time: the next is sent only once the previous
	// one is acknowledged.
	// +optional
	Ordered bool `json:"ordered,omitempty"`

	// Signing has every request carry a Hubflow-Signature header: an
	// HMAC-SHA256 over its time, idempotency key and body, keyed with a
	// secret the endpoint shares, so the endpoint can refuse forged and
	// replayed requests (docs/protocol.md; pkg/pushsig verifies it in Go).
	// While the Secret is missing nothing is delivered unsigned: messages
	// wait in the stream.
	// +optional
	Signing *PushSigning `json:"signing,omitempty"`
}

// PushSigning names the shared secret push requests are signed with.
type PushSigning struct {
	// SecretRef is the Secret, in the Consumer's namespace, and its key that
	// hold the secret. A new value is used within the gateway's resync
	// interval; endpoints should accept the old and the new one meanwhile.
	SecretRef SecretKeyReference `json:"secretRef"`
}

// SecretKeyReference names one key of a Secret in the object's namespace.
type SecretKeyReference struct {
	// Name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Name string `json:"name"`
	// Key within the Secret's data. Default "secret".
	// +optional
	// +kubebuilder:default=secret
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	Key string `json:"key,omitempty"`
}

// DeadLetter is where a Consumer's undeliverable messages go.
type DeadLetter struct {
	// TopicRef names the dead-letter Topic, in the Consumer's namespace. It
	// needs a subject ending in ".>": each Consumer's dead letters go below
	// it, on "<prefix>.<source stream>.<durable>".
	TopicRef TopicReference `json:"topicRef"`
}

// DeadLetterStatus is where a Consumer's dead letters are and how many wait there.
type DeadLetterStatus struct {
	// Topic is the dead-letter Topic.
	Topic string `json:"topic"`
	// StreamName is the dead-letter Topic's stream.
	// +optional
	StreamName string `json:"streamName,omitempty"`
	// Subject is the subject this Consumer's dead letters are published on.
	// +optional
	Subject string `json:"subject,omitempty"`
	// Held is how many of this Consumer's dead letters the dead-letter Topic
	// holds now (replayed ones are removed), as of the last count that
	// succeeded: a count the hub cannot give keeps the last figure.
	// +optional
	Held int64 `json:"held"`
}

// ConsumerStatus is what the operator resolved and observed for a Consumer.
type ConsumerStatus struct {
	CommonStatus `json:",inline"`

	// Semantic is the semantic the consumer processes with, the Topic's
	// default resolved. While it cannot be resolved against a Ready Topic:
	// the declared one, else the Topic's, else None.
	// +optional
	Semantic StatusSemantic `json:"semantic,omitempty"`

	// StreamName is the JetStream stream the consumer reads.
	// +optional
	StreamName string `json:"streamName,omitempty"`

	// DurableName is the JetStream durable consumer's name.
	// +optional
	DurableName string `json:"durableName,omitempty"`

	// EffectiveSemantic is what the consumer gets end to end: its own
	// semantic, weakened by the weakest producer registered on its Topic;
	// None while the Consumer is not Ready.
	// +optional
	EffectiveSemantic StatusSemantic `json:"effectiveSemantic,omitempty"`

	// Lag is a coarse snapshot of the consumer's backlog, refreshed at the
	// manager's lag interval and written only when it changed. Exact figures
	// are exported as Prometheus metrics.
	// +optional
	Lag *ConsumerLag `json:"lag,omitempty"`

	// Undeliverable says what happens to a message that fails every delivery.
	// +optional
	Undeliverable string `json:"undeliverable,omitempty"`

	// DeadLetter says where this consumer's dead letters go and how many
	// wait there.
	// +optional
	DeadLetter *DeadLetterStatus `json:"deadLetter,omitempty"`

	// Binding names the Secret that holds the consumer's binding.
	// +optional
	Binding *BindingReference `json:"binding,omitempty"`
}

// ConsumerLag is a consumer's backlog as the server reported it.
type ConsumerLag struct {
	// Pending messages not yet delivered to the consumer.
	Pending int64 `json:"pending"`
	// AckPending messages delivered and not yet acknowledged.
	AckPending int64 `json:"ackPending"`
	// Redelivered messages delivered more than once and still unacknowledged.
	Redelivered int64 `json:"redelivered"`
}

// Consumer registers a service that reads a Topic through the hub.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=hubflow,shortName=hfc
// +kubebuilder:printcolumn:name="Topic",type=string,JSONPath=`.spec.topicRef.name`
// +kubebuilder:printcolumn:name="Semantic",type=string,JSONPath=`.status.semantic`
// +kubebuilder:printcolumn:name="Effective",type=string,JSONPath=`.status.effectiveSemantic`
// +kubebuilder:printcolumn:name="Durable",type=string,JSONPath=`.status.durableName`
// +kubebuilder:printcolumn:name="Pending",type=integer,JSONPath=`.status.lag.pending`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Synced",type=string,JSONPath=`.status.conditions[?(@.type=="Synced")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,priority=1,JSONPath=`.status.conditions[?(@.type=="Synced")].reason`
// +kubebuilder:printcolumn:name="Message",type=string,priority=1,JSONPath=`.status.conditions[?(@.type=="Synced")].message`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// The binding Secret defaults to "<name>-binding", which must fit a Secret
// name (253 characters).
// +kubebuilder:validation:XValidation:rule="has(self.spec.bindingSecretName) || size(self.metadata.name) <= 245",reason=FieldValueInvalid,message="metadata.name must be at most 245 characters unless spec.bindingSecretName is set: the binding Secret is named <name>-binding"
type Consumer struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec ConsumerSpec `json:"spec"`
	// +optional
	Status ConsumerStatus `json:"status,omitempty"`
}

// ConsumerList is a list of Consumers.
// +kubebuilder:object:root=true
type ConsumerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Consumer `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Consumer{}, &ConsumerList{})
}

// ReplayDeadLettersAnnotation on a Consumer asks hubflow to send its dead
// letters back to their source Topic: "all", or a comma-separated list of
// dead-letter stream sequences. hubflow removes the annotation when done and
// records an event; each replayed dead letter is removed from the
// dead-letter Topic.
const ReplayDeadLettersAnnotation = "hubflow.io/replay-dead-letters"
