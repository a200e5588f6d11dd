package hubflow

import (
	"testing"

	"github.com/nats-io/nats.go"
)

// ackMeta reads both ack subject layouts as nats.go's own metadata parser
// does, and refuses what that parser refuses; what it refuses besides (a
// number it cannot read) goes to that parser.
func TestAckMetaMatchesNATS(t *testing.T) {
	for _, c := range []struct {
		subject string
		read    bool
	}{
		{"$JS.ACK.ORDERS.ledger.3.1042.1040.1765065600123456789.7", true},
		{"$JS.ACK.hub.ACCHASH.ORDERS.ledger.1.5.5.1765065600123456789.0.RANDOM", true},
		{"$JS.ACK._.ACCHASH.ORDERS.ledger.1.5.5.1765065600123456789.0", true},
		{"$JS.ACK.hub.ACCHASH.ORDERS.ledger.1.5.5.1765065600123456789.0.RANDOM.EXTRA", true},
		{"$JS.ACK.ORDERS.ledger.x.1042.1040.1765065600123456789.7", false},
		{"$JS.ACK.ORDERS.ledger.3.1042.1040.1765065600123456789", false},
		{"$JS.ACK.hub.ACCHASH.ORDERS.ledger.1.5.5.1765", false},
		{"_INBOX.abc.def.1.2.3.4.5.6", false},
	} {
		subject := c.subject
		want, werr := (&nats.Msg{Reply: subject, Sub: &nats.Subscription{}}).Metadata()
		stream, seq, delivered, published, ok := ackMeta(subject)
		if ok != c.read {
			t.Errorf("%s: ackMeta read it: %v, want %v", subject, ok, c.read)
		}
		switch {
		case werr != nil && ok:
			t.Errorf("%s: nats.go refuses it (%v), ackMeta read it", subject, werr)
		case werr != nil:
		case !ok:
		case stream != want.Stream || seq != want.Sequence.Stream || delivered != want.NumDelivered || !published.Equal(want.Timestamp):
			t.Errorf("%s: ackMeta read %s %d %d %v, nats.go %s %d %d %v", subject,
				stream, seq, delivered, published, want.Stream, want.Sequence.Stream, want.NumDelivered, want.Timestamp)
		}
	}
}
