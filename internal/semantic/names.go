package semantic

import (
	"fmt"
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

// SubjectsInNamespace checks that every subject of t starts with the token
// of t's namespace. The namespace's token is the namespace's own: no Topic
// can capture another namespace's subjects, a workload's inbox
// (_INBOX_<namespace>_…) or a system subject ($JS, $SYS). Namespace names
// are DNS labels, so the token is always a literal one.
func SubjectsInNamespace(t *hubflowv1.Topic) *RuleError {
	for i, s := range TopicSubjects(t) {
		if first, _, _ := strings.Cut(s, "."); first != t.Namespace {
			return &RuleError{
				Reason: ReasonSubjectOutsideNamespace,
				Field:  fmt.Sprintf("spec.subjects[%d]", i),
				Message: fmt.Sprintf("%q is outside namespace %s: a Topic's subjects start with its namespace (%s.…), so no namespace can take another's subjects or a workload's inbox",
					s, t.Namespace, t.Namespace),
			}
		}
	}
	return nil
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

// ClusterKey is the metadata key naming the Kubernetes cluster whose hubflow
// created a stream or consumer (the manager's --cluster-name). Two clusters
// sharing one NATS account hold Topics of the same namespace and name; the
// cluster tells their objects apart.
const ClusterKey = "hubflow.io/cluster"

// Ownership is how a server object relates to the hubflow object asking.
type Ownership int

const (
	// Owned: this object created it (or adopted it).
	Owned Ownership = iota
	// Unowned: it carries no hubflow owner; someone made it by hand.
	Unowned
	// OwnedElsewhere: another hubflow object, or another cluster, owns it.
	OwnedElsewhere
)

// OwnershipOf reads a stream's or consumer's metadata. An owner without a
// cluster was written by a release before the cluster was recorded; it still
// counts as this cluster's, since that release could not tell clusters apart
// either, and the next update stamps the cluster on it.
func OwnershipOf(metadata map[string]string, cluster, namespace, name string) Ownership {
	owner := metadata[OwnerKey]
	switch {
	case owner == "":
		return Unowned
	case owner != Owner(namespace, name):
		return OwnedElsewhere
	case metadata[ClusterKey] != "" && metadata[ClusterKey] != cluster:
		return OwnedElsewhere
	}
	return Owned
}

// OwnerOf describes who owns a server object, for messages.
func OwnerOf(metadata map[string]string) string {
	if c := metadata[ClusterKey]; c != "" {
		return metadata[OwnerKey] + " in cluster " + c
	}
	return metadata[OwnerKey]
}

// AdoptedKey records, on a stream or consumer hubflow adopted (spec
// adoptExisting), when it did. The Adopted condition is read from it on
// every reconcile, so it survives lost status writes and operator restarts.
const AdoptedKey = "hubflow.io/adopted"

// KeepAdoption carries an adoption record from the server's metadata into
// the desired metadata, so an update does not erase it.
func KeepAdoption(desired, observed map[string]string) {
	if at := observed[AdoptedKey]; at != "" {
		desired[AdoptedKey] = at
	}
}
