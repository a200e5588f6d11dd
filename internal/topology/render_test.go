package topology

import (
	"bytes"
	"encoding/xml"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hubflow/hubflow/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

var renderers = map[string]func(io.Writer, Graph) error{"dot": DOT, "mermaid": Mermaid, "svg": SVG}

// TestGolden renders the sample flows in every format and compares the
// bytes with testdata/<case>.<format>.golden (go test -update rewrites them).
func TestGolden(t *testing.T) {
	cases := map[string]func(*testing.T) objects{
		"samples": func(t *testing.T) objects {
			return samples(t, "demo", "payments.yaml", "notifications.yaml", "monitoring.yaml")
		},
		"degraded": degraded,
	}
	for name, load := range cases {
		o := load(t)
		g := Build(o.topics, o.producers, o.consumers)
		for format, render := range renderers {
			t.Run(name+"."+format, func(t *testing.T) {
				var out bytes.Buffer
				if err := render(&out, g); err != nil {
					t.Fatal(err)
				}
				golden(t, filepath.Join("testdata", name+"."+format+".golden"), out.Bytes())
				if name == "degraded" && format == "svg" {
					// docs/kubectl-plugin.md shows this picture; -update keeps it current.
					golden(t, filepath.Join(testenv.RepoRoot(), "docs", "kubectl-plugin-degraded.svg"), out.Bytes())
				}
			})
		}
	}
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/topology -update to create it)", err)
	}
	if bytes.Equal(got, want) {
		return
	}
	// The first differing line says what changed without drowning it in the
	// whole picture.
	g, w := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	for i := 0; i < max(len(g), len(w)); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			t.Errorf("%s differs from the output at line %d (go test ./internal/topology -update rewrites it after a deliberate change):\n got: %s\nwant: %s", path, i+1, gl, wl)
			return
		}
	}
}

// TestRenderingIsDeterministic: objects listed in any order give the same
// bytes, so a golden file or a diff of two runs means something.
func TestRenderingIsDeterministic(t *testing.T) {
	o := degraded(t)
	rev := objects{}
	for i := len(o.topics) - 1; i >= 0; i-- {
		rev.topics = append(rev.topics, o.topics[i])
	}
	for i := len(o.producers) - 1; i >= 0; i-- {
		rev.producers = append(rev.producers, o.producers[i])
	}
	for i := len(o.consumers) - 1; i >= 0; i-- {
		rev.consumers = append(rev.consumers, o.consumers[i])
	}
	for format, render := range renderers {
		var a, b bytes.Buffer
		if err := errors.Join(render(&a, Build(o.topics, o.producers, o.consumers)), render(&b, Build(rev.topics, rev.producers, rev.consumers))); err != nil {
			t.Fatal(err)
		}
		if a.String() != b.String() {
			t.Errorf("%s: reversed input renders differently", format)
		}
	}
}

// TestSVGIsWellFormed parses the SVG, including names that need escaping,
// and checks that no two boxes of a band overlap.
func TestSVGIsWellFormed(t *testing.T) {
	o := degraded(t)
	o.consumers[0].Status.Conditions = setReady(o.consumers[0].Status.Conditions, false, "HubError", `a <message> with "quotes" & ampersands`)
	var out bytes.Buffer
	if err := SVG(&out, Build(o.topics, o.producers, o.consumers)); err != nil {
		t.Fatal(err)
	}
	type rect struct{ X, Y, W, H int }
	var boxes []rect
	dec := xml.NewDecoder(&out)
	inNode := false
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v", err)
		}
		switch el := tok.(type) {
		case xml.StartElement:
			if el.Name.Local == "g" && strings.HasPrefix(attr(el, "class"), "node ") {
				inNode = true
			}
			if el.Name.Local == "rect" && inNode {
				boxes = append(boxes, rect{atoi(t, attr(el, "x")), atoi(t, attr(el, "y")), atoi(t, attr(el, "width")), atoi(t, attr(el, "height"))})
			}
		case xml.EndElement:
			if el.Name.Local == "g" {
				inNode = false
			}
		}
	}
	if want := len(o.topics) + len(o.producers) + len(o.consumers) + 1; len(boxes) != want { // +1: the missing Topic
		t.Fatalf("%d node boxes, want %d", len(boxes), want)
	}
	for i, a := range boxes {
		for _, b := range boxes[i+1:] {
			if a.X < b.X+b.W && b.X < a.X+a.W && a.Y < b.Y+b.H && b.Y < a.Y+a.H {
				t.Errorf("boxes overlap: %+v and %+v", a, b)
			}
		}
	}
}

func attr(el xml.StartElement, name string) string {
	for _, a := range el.Attr {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n := 0
	for _, r := range s {
		if r < '0' || r > '9' {
			t.Fatalf("not an integer coordinate: %q", s)
		}
		n = n*10 + int(r-'0')
	}
	return n
}

// TestSVGTruncatesToTheBox: a name longer than a box holds is cut with an
// ellipsis in the box and kept whole in the tooltip.
func TestSVGTruncatesToTheBox(t *testing.T) {
	long := strings.Repeat("a", 40) + "-consumer"
	o := samples(t, "demo", "notifications.yaml")
	o.consumers[0].Name = long
	o.consumers[0].Status.Lag.Redelivered = 123456
	var out bytes.Buffer
	if err := SVG(&out, Build(o.topics, o.producers, o.consumers)); err != nil {
		t.Fatal(err)
	}
	svg := out.String()
	for _, want := range []string{
		">" + strings.Repeat("a", nameChars-1) + "…</text>",
		"<title>" + long + "&#xA;lag 0 pending, 0 unacked, 123456 redelivered&#xA;Ready</title>",
		">lag 0 pending, 0 unacked, 123456 re…</text>",
	} {
		if !strings.Contains(svg, want) {
			t.Errorf("SVG lacks %s\n%s", want, svg)
		}
	}
}
