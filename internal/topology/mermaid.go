package topology

import (
	"fmt"
	"io"
	"strings"
)

// Mermaid writes g as a Mermaid flowchart, left to right, one subgraph per
// namespace; nodes that are not Ready get the notready class (red, dashed).
// Node ids are n0, n1, … in drawing order because Mermaid ids cannot hold
// the slashes and dots of Kubernetes names.
func Mermaid(w io.Writer, g Graph) error {
	var b strings.Builder
	b.WriteString("flowchart LR\n")
	b.WriteString("  classDef notready fill:#fdecea,stroke:#c62828,stroke-dasharray:5 3,color:#c62828\n")
	ids := map[string]string{}
	id := func(n Node) string {
		if v, ok := ids[n.ID()]; ok {
			return v
		}
		v := fmt.Sprintf("n%d", len(ids))
		ids[n.ID()] = v
		return v
	}
	for i, ns := range g.Namespaces {
		fmt.Fprintf(&b, "  subgraph ns%d[%s]\n", i, mermaidQuote("namespace "+ns.Name))
		b.WriteString("    direction LR\n")
		for _, f := range ns.Flows {
			for _, p := range f.Producers {
				mermaidNode(&b, id(p), p)
			}
			mermaidNode(&b, id(f.Topic), f.Topic)
			for _, c := range f.Consumers {
				mermaidNode(&b, id(c), c)
			}
		}
		for _, f := range ns.Flows {
			for _, p := range f.Producers {
				fmt.Fprintf(&b, "    %s %s|%s| %s\n", id(p), mermaidArrow(p, f.Topic), mermaidQuote(strings.Join(producerEdgeLines(p), "<br/>")), id(f.Topic))
			}
			for _, c := range f.Consumers {
				fmt.Fprintf(&b, "    %s %s|%s| %s\n", id(f.Topic), mermaidArrow(f.Topic, c), mermaidQuote(strings.Join(consumerEdgeLines(c), "<br/>")), id(c))
			}
		}
		fmt.Fprintf(&b, "    wiring%d>%s]\n", i, mermaidQuote(strings.Join(wiringLines(ns), "<br/>")))
		b.WriteString("  end\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func mermaidNode(b *strings.Builder, id string, n Node) {
	open, closing := "[", "]"
	if n.Kind == KindTopic {
		// A Topic is a stream: Mermaid's cylinder.
		open, closing = "[(", ")]"
	}
	fmt.Fprintf(b, "    %s%s%s%s\n", id, open, mermaidQuote(strings.Join(nodeLines(n), "<br/>")), closing)
	if !n.Ready {
		fmt.Fprintf(b, "    class %s notready\n", id)
	}
}

// mermaidArrow is dotted when nothing flows: one end is not Ready.
func mermaidArrow(from, to Node) string {
	if from.Ready && to.Ready {
		return "-->"
	}
	return "-.->"
}

// mermaidQuote makes a Mermaid string; a double quote inside one is written
// as an entity, the only escape Mermaid's labels understand.
func mermaidQuote(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, "#quot;") + `"`
}
