package semantic

import (
	"slices"
	"strings"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
)

// Role names which side of a Topic a NATS user serves. It is part of the
// user's inbox prefix, so a Producer and a Consumer of the same name never
// share one.
type Role string

const (
	RoleProducer Role = "producer"
	RoleConsumer Role = "consumer"
)

// InboxPrefix is the custom inbox prefix of a Producer's or Consumer's NATS
// user: its replies (publish acks, fetched messages, double-ack
// confirmations) arrive below it, and its credentials allow subscribing
// there and nowhere else.
//
// A NATS token may not hold '.', a Kubernetes name may; it is mapped to '_'.
// Neither a namespace (a DNS label) nor a name (a DNS subdomain) holds '_',
// and the role is fixed, so the prefix is unique per object: one client can
// never subscribe to another's replies.
func InboxPrefix(role Role, namespace, name string) string {
	return "_INBOX_" + namespace + "_" + string(role) + "_" + strings.ReplaceAll(name, ".", "_")
}

// Permissions are the subjects a NATS user may publish and subscribe to;
// everything else is denied. They are what a binding's credentials allow.
type Permissions struct {
	Publish   []string
	Subscribe []string
}

// Equal reports whether p and o allow the same subjects, in any order.
func (p Permissions) Equal(o Permissions) bool {
	return sameSet(p.Publish, o.Publish) && sameSet(p.Subscribe, o.Subscribe)
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

// ProducerPermissions let a producer publish on its subjects and receive
// its publish acks, nothing more. A JetStream publish is a request to the
// stream's subject whose PubAck comes back to the inbox, so no $JS.API
// subject is needed, and the producer can neither read the Topic nor
// manage its stream.
func ProducerPermissions(policy ProducerPolicy, inbox string) Permissions {
	return Permissions{
		Publish:   slices.Clone(policy.Subjects),
		Subscribe: []string{inbox + ".>"},
	}
}

// ConsumerPermissions let a consumer read its own durable and nothing else:
// look it up (CONSUMER.INFO), pull from it (CONSUMER.MSG.NEXT, messages
// arrive in the inbox) and, unless it is AtMostOnce, acknowledge its
// messages ($JS.ACK.<stream>.<durable>.>; a double ack's confirmation comes
// back to the inbox). It cannot publish to the Topic, subscribe to its
// subjects, read another durable or create and delete consumers or streams.
func ConsumerPermissions(sem hubflowv1.DeliverySemantic, stream, durable, inbox string) Permissions {
	pub := []string{
		"$JS.API.CONSUMER.INFO." + stream + "." + durable,
		"$JS.API.CONSUMER.MSG.NEXT." + stream + "." + durable,
	}
	if sem != hubflowv1.AtMostOnce {
		pub = append(pub, "$JS.ACK."+stream+"."+durable+".>")
	}
	return Permissions{Publish: pub, Subscribe: []string{inbox + ".>"}}
}
