package topology

import (
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
)

// StatusRow is one object in the status table.
type StatusRow struct {
	Kind      Kind
	Namespace string
	Name      string
	Readiness
	// Lag is "-" for a Topic or Producer.
	Lag string
	// Credentials is the binding's credentials: their expiry, or why there
	// are none; "-" for a Topic.
	Credentials string
}

// messageChars bounds a message in the table, which must stay one line.
const messageChars = 60

// Reasons of the CredentialsIssued condition (controllers/binding.go).
// They are repeated here rather than imported so the plugin does not link
// the controllers.
const (
	reasonIssued         = "Issued"
	reasonHubWithoutAuth = "HubWithoutAuth"
	reasonNotRenewed     = "NotRenewed"
)

// validUntil finds the expiry in a CredentialsIssued message: the status has
// no field of its own for it, and the condition's message is where the
// operator states it ("... valid until 2026-12-07T08:00:00Z; ...").
var validUntil = regexp.MustCompile(`valid until (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)`)

// Status lists every object, those that are not Ready first (the rows one
// runs the command for), then by kind, namespace and name.
func Status(topics []hubflowv1.Topic, producers []hubflowv1.Producer, consumers []hubflowv1.Consumer, now time.Time) []StatusRow {
	var rows []StatusRow
	for _, t := range topics {
		rows = append(rows, StatusRow{Kind: KindTopic, Namespace: t.Namespace, Name: t.Name,
			Readiness: readiness(t.Status.Conditions), Lag: "-", Credentials: "-"})
	}
	for _, p := range producers {
		rows = append(rows, StatusRow{Kind: KindProducer, Namespace: p.Namespace, Name: p.Name,
			Readiness: readiness(p.Status.Conditions), Lag: "-", Credentials: credentials(p.Status.Conditions, now)})
	}
	for _, c := range consumers {
		lag := "-"
		if l := c.Status.Lag; l != nil {
			lag = fmt.Sprintf("%d/%d", l.Pending, l.AckPending)
		}
		rows = append(rows, StatusRow{Kind: KindConsumer, Namespace: c.Namespace, Name: c.Name,
			Readiness: readiness(c.Status.Conditions), Lag: lag, Credentials: credentials(c.Status.Conditions, now)})
	}
	kindOrder := map[Kind]int{KindTopic: 0, KindProducer: 1, KindConsumer: 2}
	slices.SortStableFunc(rows, func(a, b StatusRow) int {
		switch {
		case a.Ready != b.Ready && !a.Ready:
			return -1
		case a.Ready != b.Ready:
			return 1
		case kindOrder[a.Kind] != kindOrder[b.Kind]:
			return kindOrder[a.Kind] - kindOrder[b.Kind]
		case a.Namespace != b.Namespace:
			return strings.Compare(a.Namespace, b.Namespace)
		}
		return strings.Compare(a.Name, b.Name)
	})
	return rows
}

func credentials(conds []metav1.Condition, now time.Time) string {
	c := meta.FindStatusCondition(conds, hubflowv1.ConditionCredentialsIssued)
	switch {
	case c == nil:
		return "not issued yet"
	case c.Reason == reasonHubWithoutAuth:
		return "none (hub without auth)"
	case c.Reason == reasonNotRenewed:
		return "not renewed"
	case c.Status != metav1.ConditionTrue:
		return "not issued: " + c.Reason
	}
	m := validUntil.FindStringSubmatch(c.Message)
	if m == nil {
		return "issued"
	}
	expires, err := time.Parse(time.RFC3339, m[1])
	if err != nil {
		return "issued"
	}
	left := expires.Sub(now).Truncate(time.Minute)
	if left <= 0 {
		return m[1] + " (expired)"
	}
	return fmt.Sprintf("%s (in %s)", m[1], shortDuration(left))
}

// shortDuration is a duration as kubectl's AGE column writes it: the two
// largest units.
func shortDuration(d time.Duration) string {
	days := int(d / (24 * time.Hour))
	hours := int(d/time.Hour) % 24
	minutes := int(d/time.Minute) % 60
	switch {
	case days > 0:
		return fmt.Sprintf("%dd%dh", days, hours)
	case hours > 0:
		return fmt.Sprintf("%dh%dm", hours, minutes)
	}
	return fmt.Sprintf("%dm", minutes)
}

// WriteStatus writes rows as a table, with a NAMESPACE column when they
// span more than one, under a line counting what is not Ready.
func WriteStatus(w io.Writer, rows []StatusRow) error {
	notReady, namespaces := 0, map[string]bool{}
	for _, r := range rows {
		if !r.Ready {
			notReady++
		}
		namespaces[r.Namespace] = true
	}
	withNS := len(namespaces) > 1
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "%d of %d objects not Ready\n", notReady, len(rows))
	head := "KIND\tNAME\tREADY\tREASON\tLAG(PENDING/UNACKED)\tCREDENTIALS\tMESSAGE\n"
	if withNS {
		head = "KIND\tNAMESPACE\tNAME\tREADY\tREASON\tLAG(PENDING/UNACKED)\tCREDENTIALS\tMESSAGE\n"
	}
	fmt.Fprint(tw, head)
	for _, r := range rows {
		ready, reason, msg := "True", "-", "-"
		if !r.Ready {
			ready, reason, msg = "False", r.Reason, truncate(oneLine(r.Message), messageChars)
		}
		ns := ""
		if withNS {
			ns = r.Namespace + "\t"
		}
		fmt.Fprintf(tw, "%s\t%s%s\t%s\t%s\t%s\t%s\t%s\n", r.Kind, ns, r.Name, ready, reason, r.Lag, r.Credentials, msg)
	}
	return tw.Flush()
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
