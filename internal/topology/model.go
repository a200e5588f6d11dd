// Package topology turns lists of Topics, Producers and Consumers into a
// picture of the hub's flows (producers -> Topics -> consumers) and renders
// it as DOT, Mermaid or SVG. Everything here is pure: the same objects give
// the same bytes, so renderings can be compared with golden files.
package topology

import (
	"cmp"
	"slices"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
)

// Kind is the kind of a node.
type Kind string

const (
	KindTopic    Kind = "Topic"
	KindProducer Kind = "Producer"
	KindConsumer Kind = "Consumer"
)

// Readiness is a node's Ready condition, reduced to what a picture shows.
type Readiness struct {
	Ready bool
	// Reason and Message of the Ready condition; Reason is "Unknown" when
	// the object has no Ready condition yet (the operator has not seen it).
	Reason  string
	Message string
}

// Node is one object of the picture.
type Node struct {
	Kind      Kind
	Namespace string
	Name      string
	Readiness
	// Semantic is what the object resolved (status.semantic), or what it
	// declares while the operator has not resolved it yet.
	Semantic string
	// Effective is status.effectiveSemantic: None while not Ready; empty
	// for a Producer, which has none.
	Effective string
	// Lag is a Consumer's backlog; nil when not reported.
	Lag *hubflowv1.ConsumerLag
	// Missing marks a Topic that Producers or Consumers name but that does
	// not exist.
	Missing bool
}

// ID is a stable identifier of the node, unique in a Graph.
func (n Node) ID() string { return string(n.Kind) + "/" + n.Namespace + "/" + n.Name }

// Flow is one Topic with the producers that publish to it and the consumers
// that read it, in name order.
type Flow struct {
	Topic     Node
	Producers []Node
	Consumers []Node
}

// Namespace is the flows of one namespace and their wiring arithmetic.
type Namespace struct {
	Name   string
	Flows  []Flow
	Wiring Wiring
}

// Graph is the whole picture, namespaces in name order.
type Graph struct {
	Namespaces []Namespace
}

// ReasonTopicNotFound marks a Topic node drawn because something refers to it.
const ReasonTopicNotFound = "TopicNotFound"

// Build groups the objects into flows per namespace. Producers and
// Consumers whose Topic does not exist hang off a Missing Topic node, so
// a dangling reference is visible instead of silently left out.
func Build(topics []hubflowv1.Topic, producers []hubflowv1.Producer, consumers []hubflowv1.Consumer) Graph {
	type key struct{ ns, name string }
	flows := map[key]*Flow{}
	topicSemantic := map[key]string{}
	flow := func(ns, name string) *Flow {
		k := key{ns, name}
		if f, ok := flows[k]; ok {
			return f
		}
		f := &Flow{Topic: Node{Kind: KindTopic, Namespace: ns, Name: name, Missing: true,
			Readiness: Readiness{Reason: ReasonTopicNotFound, Message: "no Topic " + name + " in namespace " + ns},
			Semantic:  string(hubflowv1.SemanticNone), Effective: string(hubflowv1.SemanticNone)}}
		flows[k] = f
		return f
	}
	for _, t := range topics {
		f := flow(t.Namespace, t.Name)
		f.Topic = Node{Kind: KindTopic, Namespace: t.Namespace, Name: t.Name,
			Readiness: readiness(t.Status.Conditions),
			Semantic:  orDefault(string(t.Spec.Semantic), string(hubflowv1.AtLeastOnce)),
			Effective: orDefault(string(t.Status.EffectiveSemantic), string(hubflowv1.SemanticNone))}
		topicSemantic[key{t.Namespace, t.Name}] = f.Topic.Semantic
	}
	for _, p := range producers {
		f := flow(p.Namespace, p.Spec.TopicRef.Name)
		f.Producers = append(f.Producers, Node{Kind: KindProducer, Namespace: p.Namespace, Name: p.Name,
			Readiness: readiness(p.Status.Conditions),
			Semantic:  resolved(p.Status.Semantic, p.Spec.Semantic, topicSemantic[key{p.Namespace, p.Spec.TopicRef.Name}])})
	}
	for _, c := range consumers {
		f := flow(c.Namespace, c.Spec.TopicRef.Name)
		f.Consumers = append(f.Consumers, Node{Kind: KindConsumer, Namespace: c.Namespace, Name: c.Name,
			Readiness: readiness(c.Status.Conditions),
			Semantic:  resolved(c.Status.Semantic, c.Spec.Semantic, topicSemantic[key{c.Namespace, c.Spec.TopicRef.Name}]),
			Effective: orDefault(string(c.Status.EffectiveSemantic), string(hubflowv1.SemanticNone)),
			Lag:       c.Status.Lag})
	}

	byNS := map[string]*Namespace{}
	for _, f := range flows {
		slices.SortFunc(f.Producers, byName)
		slices.SortFunc(f.Consumers, byName)
		ns, ok := byNS[f.Topic.Namespace]
		if !ok {
			ns = &Namespace{Name: f.Topic.Namespace}
			byNS[f.Topic.Namespace] = ns
		}
		ns.Flows = append(ns.Flows, *f)
	}
	var g Graph
	for _, ns := range byNS {
		slices.SortFunc(ns.Flows, func(a, b Flow) int { return cmp.Compare(a.Topic.Name, b.Topic.Name) })
		fanouts := make([]Fanout, 0, len(ns.Flows))
		for _, f := range ns.Flows {
			fanouts = append(fanouts, Fanout{Producers: len(f.Producers), Consumers: len(f.Consumers)})
		}
		ns.Wiring = Count(fanouts)
		g.Namespaces = append(g.Namespaces, *ns)
	}
	slices.SortFunc(g.Namespaces, func(a, b Namespace) int { return cmp.Compare(a.Name, b.Name) })
	return g
}

func byName(a, b Node) int { return cmp.Compare(a.Name, b.Name) }

func readiness(conds []metav1.Condition) Readiness {
	c := meta.FindStatusCondition(conds, hubflowv1.ConditionReady)
	if c == nil {
		return Readiness{Reason: "Unknown", Message: "no Ready condition yet: the operator has not reconciled it"}
	}
	return Readiness{Ready: c.Status == metav1.ConditionTrue, Reason: c.Reason, Message: c.Message}
}

// resolved is the semantic an object works with: what the operator
// resolved, else what it declares, else its Topic's, else None.
func resolved(status hubflowv1.StatusSemantic, declared *hubflowv1.DeliverySemantic, topic string) string {
	switch {
	case status != "":
		return string(status)
	case declared != nil && *declared != "":
		return string(*declared)
	case topic != "":
		return topic
	}
	return string(hubflowv1.SemanticNone)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
