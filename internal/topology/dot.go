package topology

import (
	"fmt"
	"io"
	"strings"
)

// DOT writes g as a Graphviz digraph, left to right, one cluster per
// namespace, producers, Topics and consumers each on one rank. Nodes that
// are not Ready are red and dashed.
func DOT(w io.Writer, g Graph) error {
	var b strings.Builder
	b.WriteString("digraph hubflow {\n")
	b.WriteString("  rankdir=LR;\n")
	b.WriteString("  node [shape=box, style=\"rounded,filled\", fillcolor=\"#ffffff\", fontname=\"Helvetica\"];\n")
	b.WriteString("  edge [fontname=\"Helvetica\", fontsize=10];\n")
	for i, ns := range g.Namespaces {
		fmt.Fprintf(&b, "  subgraph cluster_%d {\n", i)
		fmt.Fprintf(&b, "    label=%s;\n", dotQuote(strings.Join(wiringLines(ns), "\n")))
		b.WriteString("    labeljust=l;\n")
		var producers, topics, consumers []string
		for _, f := range ns.Flows {
			topics = append(topics, dotQuote(f.Topic.ID()))
			for _, p := range f.Producers {
				producers = append(producers, dotQuote(p.ID()))
			}
			for _, c := range f.Consumers {
				consumers = append(consumers, dotQuote(c.ID()))
			}
		}
		for _, f := range ns.Flows {
			for _, p := range f.Producers {
				dotNode(&b, p)
			}
			dotNode(&b, f.Topic)
			for _, c := range f.Consumers {
				dotNode(&b, c)
			}
		}
		for _, rank := range [][]string{producers, topics, consumers} {
			if len(rank) > 0 {
				fmt.Fprintf(&b, "    { rank=same; %s; }\n", strings.Join(rank, "; "))
			}
		}
		for _, f := range ns.Flows {
			for _, p := range f.Producers {
				fmt.Fprintf(&b, "    %s -> %s [label=%s%s];\n", dotQuote(p.ID()), dotQuote(f.Topic.ID()),
					dotQuote(strings.Join(producerEdgeLines(p), "\n")), dotEdgeStyle(p, f.Topic))
			}
			for _, c := range f.Consumers {
				fmt.Fprintf(&b, "    %s -> %s [label=%s%s];\n", dotQuote(f.Topic.ID()), dotQuote(c.ID()),
					dotQuote(strings.Join(consumerEdgeLines(c), "\n")), dotEdgeStyle(f.Topic, c))
			}
		}
		b.WriteString("  }\n")
	}
	b.WriteString("}\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func dotNode(b *strings.Builder, n Node) {
	style := ""
	if !n.Ready {
		style = `, color="#c62828", fontcolor="#c62828", style="rounded,dashed,filled", fillcolor="#fdecea"`
	}
	fmt.Fprintf(b, "    %s [label=%s%s];\n", dotQuote(n.ID()), dotQuote(strings.Join(nodeLines(n), "\n")), style)
}

// dotEdgeStyle dashes an edge that touches a node that is not Ready:
// nothing flows along it now.
func dotEdgeStyle(from, to Node) string {
	if from.Ready && to.Ready {
		return ""
	}
	return `, style=dashed, color="#c62828"`
}

// dotQuote makes a DOT string: quotes and backslashes escaped, newlines
// as DOT's centred line breaks.
func dotQuote(s string) string {
	s = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
	return `"` + s + `"`
}
