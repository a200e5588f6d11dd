package hub

import (
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
)

// AdvisoryKind is a change JetStream announces about a stream or consumer.
type AdvisoryKind string

const (
	StreamDeleted   AdvisoryKind = "StreamDeleted"
	StreamUpdated   AdvisoryKind = "StreamUpdated"
	ConsumerDeleted AdvisoryKind = "ConsumerDeleted"
)

// Advisory names what changed; Consumer is empty for stream advisories.
type Advisory struct {
	Kind     AdvisoryKind
	Stream   string
	Consumer string
}

// advisorySubjects are the server's action advisories hubflow repairs on.
// Consumer edits raise no advisory on the server; the periodic resync is
// what catches them.
var advisorySubjects = map[string]AdvisoryKind{
	"$JS.EVENT.ADVISORY.STREAM.DELETED.*":     StreamDeleted,
	"$JS.EVENT.ADVISORY.STREAM.UPDATED.*":     StreamUpdated,
	"$JS.EVENT.ADVISORY.CONSUMER.DELETED.*.*": ConsumerDeleted,
}

// WatchAdvisories calls handle for every stream or consumer advisory until
// the returned function is called. The subscriptions live on the shared
// connection, so they come back by themselves after a reconnect; what was
// announced while disconnected is caught by the resync on reconnect.
// Only the subject is read: stream and consumer names are its last tokens.
func WatchAdvisories(nc *nats.Conn, handle func(Advisory)) (stop func(), err error) {
	var subs []*nats.Subscription
	stop = func() {
		for _, s := range subs {
			_ = s.Unsubscribe()
		}
	}
	for subject, kind := range advisorySubjects {
		sub, err := nc.Subscribe(subject, func(m *nats.Msg) {
			if a, ok := parseAdvisory(kind, m.Subject); ok {
				handle(a)
			}
		})
		if err != nil {
			stop()
			return nil, fmt.Errorf("subscribe %s: %w", subject, err)
		}
		subs = append(subs, sub)
	}
	return stop, nil
}

func parseAdvisory(kind AdvisoryKind, subject string) (Advisory, bool) {
	tokens := strings.Split(subject, ".")
	switch {
	case kind == ConsumerDeleted && len(tokens) == 7:
		return Advisory{Kind: kind, Stream: tokens[5], Consumer: tokens[6]}, true
	case kind != ConsumerDeleted && len(tokens) == 6:
		return Advisory{Kind: kind, Stream: tokens[5]}, true
	}
	return Advisory{}, false
}
