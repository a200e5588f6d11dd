package topology

import (
	"fmt"
	"unicode/utf8"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
)

// The renderers share these texts so DOT, Mermaid and SVG say the same.

// nodeLines are a node's label: its name, what it is doing, and its readiness.
func nodeLines(n Node) []string {
	var detail string
	switch {
	case n.Missing:
		detail = "no such Topic"
	case n.Kind == KindTopic:
		detail = fmt.Sprintf("%s, effective %s", n.Semantic, n.Effective)
	case n.Kind == KindProducer:
		detail = "publishes " + n.Semantic
	case n.Kind == KindConsumer:
		detail = lagText(n.Lag)
	}
	return []string{n.Name, detail, readyText(n)}
}

func lagText(l *hubflowv1.ConsumerLag) string {
	if l == nil {
		return "lag not reported"
	}
	s := fmt.Sprintf("lag %d pending, %d unacked", l.Pending, l.AckPending)
	if l.Redelivered > 0 {
		s += fmt.Sprintf(", %d redelivered", l.Redelivered)
	}
	return s
}

func readyText(n Node) string {
	switch {
	case n.Missing:
		return "MISSING: " + n.Reason
	case n.Ready:
		return "Ready"
	}
	return "NOT READY: " + n.Reason
}

// edgeLines label an edge. A producer has no effective semantic of its own:
// the weakest producer lowers its Topic's, which the Topic node shows.
func producerEdgeLines(p Node) []string { return []string{"declared " + p.Semantic} }

func consumerEdgeLines(c Node) []string {
	return []string{"declared " + c.Semantic, "effective " + c.Effective}
}

// wiringLines state the n+1 arithmetic in cmd/demo's words.
func wiringLines(ns Namespace) []string {
	w := ns.Wiring
	return []string{
		fmt.Sprintf("namespace %s: %d services, each with one connection to the hub (%d connections).", ns.Name, w.Services, w.HubConnections),
		fmt.Sprintf("Wired to each other instead: %d point-to-point integrations, and a mesh of %d services grows to %d.", w.PointToPoint, w.Services, w.Mesh),
	}
}

// truncate shortens s to at most n runes, marking the cut with "…".
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
