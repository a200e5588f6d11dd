package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// PublishPolicy is how a producer's client waits for and retries publishes.
// AtMostOnce producers do not wait for acknowledgements, so it does not apply to them.
type PublishPolicy struct {
	// AckTimeout is how long a publish waits for the stream's acknowledgement
	// before it is retried. Default 5s.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="!self.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$') || (duration(self) >= duration('100ms') && duration(self) <= duration('5m'))",message="must be between 100ms and 5m"
	AckTimeout *metav1.Duration `json:"ackTimeout,omitempty"`

	// Retries is how many times an unacknowledged publish is retried before the
	// client reports an error. Default 5.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	Retries *int32 `json:"retries,omitempty"`

	// RetryWait is the pause between retries. Default 500ms.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="!self.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$') || (duration(self) <= duration('5m'))",message="must be at most 5m"
	RetryWait *metav1.Duration `json:"retryWait,omitempty"`
}

// ProducerSpec registers a service that publishes to a Topic.
//
// +kubebuilder:validation:XValidation:rule="!has(self.publish) || !has(self.semantic) || self.semantic != 'AtMostOnce'",fieldPath=".publish",reason=FieldValueForbidden,message="publish applies only to AtLeastOnce and ExactlyOnce: an AtMostOnce producer does not wait for acknowledgements"
type ProducerSpec struct {
	// TopicRef names the Topic this producer publishes to. Immutable.
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="topicRef is immutable: register a new Producer for another Topic"
	TopicRef TopicReference `json:"topicRef"`

	// Semantic the producer publishes with. Defaults to the Topic's; it may be
	// weaker, never stronger. An AtLeastOnce producer on an ExactlyOnce Topic
	// publishes without message ids, so its consumers get AtLeastOnce.
	// +optional
	Semantic *DeliverySemantic `json:"semantic,omitempty"`

	// Subjects the producer may publish on: a subset of the Topic's subjects.
	// Defaults to all of them.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=255
	// +kubebuilder:validation:items:Pattern=`^[^.\s*>$][^.\s*>]*(\.([^.\s*>]+|\*))*(\.>)?$`
	Subjects []string `json:"subjects,omitempty"`

	// Publish is how the client waits for and retries acknowledgements.
	// +optional
	Publish *PublishPolicy `json:"publish,omitempty"`

	// Gateway lets HTTP callers publish as this Producer through hubflow's
	// gateway (cmd/gateway), which keeps the Producer's semantic for them.
	// +optional
	Gateway *GatewayAccess `json:"gateway,omitempty"`

	// BindingSecretName is the Secret the producer's binding is written to.
	// Defaults to "<name>-binding".
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	BindingSecretName string `json:"bindingSecretName,omitempty"`
}

// GatewayAccess names who may publish as a Producer over HTTP.
type GatewayAccess struct {
	// ServiceAccounts of the Producer's namespace whose tokens (audience
	// "hubflow-gateway") may publish as this Producer.
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	ServiceAccounts []string `json:"serviceAccounts"`

	// RequestsPerSecond bounds how fast callers may publish as this Producer,
	// per gateway replica; above it they get 429 with Retry-After. Unset
	// means no bound.
	// +optional
	// +kubebuilder:validation:Minimum=1
	RequestsPerSecond *int32 `json:"requestsPerSecond,omitempty"`
}

// ProducerStatus is what the operator resolved for a Producer.
type ProducerStatus struct {
	CommonStatus `json:",inline"`

	// Semantic is the semantic the producer publishes with, the Topic's
	// default resolved. While it cannot be resolved against a Ready Topic:
	// the declared one, else the Topic's, else None.
	// +optional
	Semantic StatusSemantic `json:"semantic,omitempty"`

	// StreamName is the JetStream stream the producer publishes to.
	// +optional
	StreamName string `json:"streamName,omitempty"`

	// Subjects are the subjects the producer may publish on, defaults resolved.
	// +optional
	// +listType=atomic
	Subjects []string `json:"subjects,omitempty"`

	// Binding names the Secret that holds the producer's binding.
	// +optional
	Binding *BindingReference `json:"binding,omitempty"`
}

// Producer registers a service that publishes to a Topic through the hub.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=hubflow,shortName=hfp
// +kubebuilder:printcolumn:name="Topic",type=string,JSONPath=`.spec.topicRef.name`
// +kubebuilder:printcolumn:name="Semantic",type=string,JSONPath=`.status.semantic`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Synced",type=string,JSONPath=`.status.conditions[?(@.type=="Synced")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,priority=1,JSONPath=`.status.conditions[?(@.type=="Synced")].reason`
// +kubebuilder:printcolumn:name="Message",type=string,priority=1,JSONPath=`.status.conditions[?(@.type=="Synced")].message`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// The binding Secret defaults to "<name>-binding", which must fit a Secret
// name (253 characters).
// +kubebuilder:validation:XValidation:rule="has(self.spec.bindingSecretName) || size(self.metadata.name) <= 245",reason=FieldValueInvalid,message="metadata.name must be at most 245 characters unless spec.bindingSecretName is set: the binding Secret is named <name>-binding"
type Producer struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec ProducerSpec `json:"spec"`
	// +optional
	Status ProducerStatus `json:"status,omitempty"`
}

// ProducerList is a list of Producers.
// +kubebuilder:object:root=true
type ProducerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Producer `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Producer{}, &ProducerList{})
}
