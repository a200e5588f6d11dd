package topology

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
)

// The SVG layout is three columns (producers, Topics, consumers) read left
// to right, one band per namespace. Each flow takes as many rows as its
// longer side; its Topic sits in the middle of them, so the edges fan out
// without crossing another flow's. Sizes are fixed (no text measuring is
// possible without a font engine), so labels are truncated to what the
// boxes hold at the estimated glyph widths below.
const (
	svgMargin    = 20
	svgNodeW     = 270
	svgNodeH     = 58
	svgGap       = 190 // between columns: room for a two-line edge label
	svgRow       = 86  // row pitch: two edge labels of a fan-out stay apart
	svgBandHead  = 34  // namespace title
	svgBandFoot  = 38  // the two lines of wiring arithmetic
	svgBandSpace = 24  // between namespace bands
	svgHead      = 64  // title, legend and column headings

	nameChars   = 30 // 14px bold at about 8px a glyph in a 270px box
	detailChars = 36 // 12px at about 7px a glyph
	svgWidth    = 2*svgMargin + 3*svgNodeW + 2*svgGap
)

var svgColumnX = [3]int{svgMargin, svgMargin + svgNodeW + svgGap, svgMargin + 2*(svgNodeW+svgGap)}

type svgStyle struct{ fill, stroke string }

var svgKindStyle = map[Kind]svgStyle{
	KindProducer: {"#e3f2fd", "#1565c0"},
	KindTopic:    {"#fff8e1", "#f9a825"},
	KindConsumer: {"#e8f5e9", "#2e7d32"},
}

var svgNotReady = svgStyle{"#fdecea", "#c62828"}

// SVG writes g as a standalone SVG picture. Hovering a node shows its
// labels in full and, when it is not Ready, its condition's message.
func SVG(w io.Writer, g Graph) error {
	var body strings.Builder
	y := svgHead
	for _, ns := range g.Namespaces {
		y = svgBand(&body, ns, y) + svgBandSpace
	}
	if len(g.Namespaces) == 0 {
		svgText(&body, svgMargin, y+16, 13, "", "start", "no Topics, Producers or Consumers found")
		y += 40
	}
	height := y

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="Helvetica, Arial, sans-serif">`+"\n", svgWidth, height, svgWidth, height)
	b.WriteString(`<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#555555"/></marker>` +
		`<marker id="arrow-down" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#c62828"/></marker></defs>` + "\n")
	fmt.Fprintf(&b, `<rect x="0" y="0" width="%d" height="%d" fill="#ffffff"/>`+"\n", svgWidth, height)
	svgText(&b, svgMargin, 24, 16, "bold", "start", "hubflow topology: producers → Topics → consumers")
	svgText(&b, svgWidth-svgMargin, 24, 11, "", "end", "solid: Ready · red, dashed: not Ready (hover for the message)")
	for i, h := range []string{"Producers", "Topics", "Consumers"} {
		svgText(&b, svgColumnX[i]+svgNodeW/2, 52, 13, "bold", "middle", h)
	}
	b.WriteString(body.String())
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// svgBand draws one namespace from top y and returns where it ends.
func svgBand(b *strings.Builder, ns Namespace, top int) int {
	rows := 0
	for _, f := range ns.Flows {
		rows += flowRows(f)
	}
	height := svgBandHead + rows*svgRow + svgBandFoot
	fmt.Fprintf(b, `<g class="namespace" id="%s">`+"\n", svgAttr("ns-"+ns.Name))
	fmt.Fprintf(b, `<rect x="%d" y="%d" width="%d" height="%d" rx="8" fill="#f5f5f5" stroke="#bdbdbd"/>`+"\n",
		svgMargin/2, top, svgWidth-svgMargin, height)
	svgText(b, svgMargin, top+22, 14, "bold", "start", "namespace "+ns.Name)

	y := top + svgBandHead
	var edges, labels, nodes strings.Builder
	for _, f := range ns.Flows {
		n := flowRows(f)
		topicY := y + (n-1)*svgRow/2
		svgNode(&nodes, f.Topic, svgColumnX[1], topicY)
		for i, p := range f.Producers {
			py := y + (n-len(f.Producers))*svgRow/2 + i*svgRow
			svgNode(&nodes, p, svgColumnX[0], py)
			svgEdge(&edges, &labels, svgColumnX[0]+svgNodeW, py, svgColumnX[1], topicY, p.Ready && f.Topic.Ready, producerEdgeLines(p))
		}
		for i, c := range f.Consumers {
			cy := y + (n-len(f.Consumers))*svgRow/2 + i*svgRow
			svgNode(&nodes, c, svgColumnX[2], cy)
			svgEdge(&edges, &labels, svgColumnX[1]+svgNodeW, topicY, svgColumnX[2], cy, c.Ready && f.Topic.Ready, consumerEdgeLines(c))
		}
		y += n * svgRow
	}
	// Edges first, then their labels, then nodes: a label is never hidden
	// under an edge, and an arrow head never under a label.
	b.WriteString(edges.String())
	b.WriteString(labels.String())
	b.WriteString(nodes.String())
	for i, line := range wiringLines(ns) {
		svgText(b, svgMargin, y+4+i*17, 12, "", "start", line)
	}
	b.WriteString("</g>\n")
	return top + height
}

func flowRows(f Flow) int { return max(len(f.Producers), len(f.Consumers), 1) }

func svgNode(b *strings.Builder, n Node, x, y int) {
	st, dash := svgKindStyle[n.Kind], ""
	if !n.Ready {
		st, dash = svgNotReady, ` stroke-dasharray="6 3"`
	}
	fmt.Fprintf(b, `<g class="node %s" id="%s">`, strings.ToLower(string(n.Kind)), svgAttr(n.ID()))
	// The title is the tooltip: the lines in full (a box truncates them)
	// and, when not Ready, the condition's message.
	tip := strings.Join(nodeLines(n), "\n")
	if !n.Ready {
		tip += "\n" + n.Message
	}
	b.WriteString("<title>")
	_ = xml.EscapeText(b, []byte(tip))
	b.WriteString("</title>")
	fmt.Fprintf(b, `<rect x="%d" y="%d" width="%d" height="%d" rx="6" fill="%s" stroke="%s" stroke-width="1.5"%s/>`,
		x, y, svgNodeW, svgNodeH, st.fill, st.stroke, dash)
	lines := nodeLines(n)
	svgText(b, x+10, y+19, 14, "bold", "start", truncate(lines[0], nameChars))
	svgText(b, x+10, y+36, 12, "", "start", truncate(lines[1], detailChars))
	colour := "#424242"
	if !n.Ready {
		colour = svgNotReady.stroke
	}
	fmt.Fprintf(b, `<text x="%d" y="%d" font-size="12" fill="%s">`, x+10, y+52, colour)
	_ = xml.EscapeText(b, []byte(truncate(lines[2], detailChars)))
	b.WriteString("</text></g>\n")
}

// svgEdge draws a curve from the right middle of one box to the left middle
// of the next, with its label centred on the curve's midpoint.
func svgEdge(edges, labels *strings.Builder, x1, y1, x2, y2 int, live bool, lines []string) {
	y1 += svgNodeH / 2
	y2 += svgNodeH / 2
	xm := (x1 + x2) / 2
	stroke, marker, dash := "#555555", "arrow", ""
	if !live {
		stroke, marker, dash = svgNotReady.stroke, "arrow-down", ` stroke-dasharray="6 3"`
	}
	fmt.Fprintf(edges, `<path d="M%d,%d C%d,%d %d,%d %d,%d" fill="none" stroke="%s" stroke-width="1.5"%s marker-end="url(#%s)"/>`+"\n",
		x1, y1, xm, y1, xm, y2, x2, y2, stroke, dash, marker)
	ym := (y1 + y2) / 2
	longest := 0
	for _, l := range lines {
		longest = max(longest, len([]rune(l)))
	}
	w := longest*62/10 + 10 // 11px text at about 6.2px a glyph, plus padding
	h := len(lines)*13 + 4
	fmt.Fprintf(labels, `<rect x="%d" y="%d" width="%d" height="%d" rx="3" fill="#ffffff" fill-opacity="0.9" stroke="#e0e0e0"/>`+"\n",
		xm-w/2, ym-h/2, w, h)
	for i, l := range lines {
		svgText(labels, xm, ym-h/2+13+i*13, 11, "", "middle", l)
	}
}

func svgText(b *strings.Builder, x, y, size int, weight, anchor, s string) {
	fmt.Fprintf(b, `<text x="%d" y="%d" font-size="%d"`, x, y, size)
	if weight != "" {
		fmt.Fprintf(b, ` font-weight="%s"`, weight)
	}
	if anchor != "start" {
		fmt.Fprintf(b, ` text-anchor="%s"`, anchor)
	}
	b.WriteString(">")
	_ = xml.EscapeText(b, []byte(s))
	b.WriteString("</text>\n")
}

func svgAttr(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}
