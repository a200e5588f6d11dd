package semantic

import (
	"strings"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
)

// OwnerKey is the metadata key on every stream and consumer hubflow creates;
// its value is "<namespace>/<name>" of the owning object. A stream without it
// was made by someone else and is never adopted silently.
const OwnerKey = "hubflow.io/owner"

// StreamName is the stream backing a Topic. A namespace is a DNS label (no
// dots, no underscores) and a name a DNS subdomain (no underscores), so
// mapping the name's dots to underscores and joining with "_" is injective:
// two Topics never share a stream.
func StreamName(namespace, topic string) string {
	return namespace + "_" + strings.ReplaceAll(topic, ".", "_")
}

// DefaultSubjects are the subjects of a Topic that declares none: the topic's
// own subject and everything below it.
func DefaultSubjects(namespace, topic string) []string {
	base := namespace + "." + topic
	return []string{base, base + ".>"}
}

// TopicSubjects are the subjects a Topic's stream captures, defaults resolved.
func TopicSubjects(t *hubflowv1.Topic) []string {
	if len(t.Spec.Subjects) > 0 {
		return append([]string(nil), t.Spec.Subjects...)
	}
	return DefaultSubjects(t.Namespace, t.Name)
}

// DurableName is the JetStream durable consumer of a Consumer.
func DurableName(c *hubflowv1.Consumer) string {
	if c.Spec.DurableName != "" {
		return c.Spec.DurableName
	}
	// A Kubernetes name may hold dots, a durable name may not.
	return strings.ReplaceAll(c.Name, ".", "_")
}

// BindingSecretName is the Secret a Producer's or Consumer's binding goes to.
func BindingSecretName(objectName, declared string) string {
	if declared != "" {
		return declared
	}
	return objectName + "-binding"
}

// Owner is the OwnerKey value for an object.
func Owner(namespace, name string) string {
	return namespace + "/" + name
}
