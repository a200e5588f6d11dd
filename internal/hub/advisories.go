package hub

import (
	"bytes"
	"encoding/json"
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
	// StreamCreated, StreamCall and ConsumerCall come from the API audit
	// advisory: a client called an API that creates (StreamCreated), edits
	// or deletes the stream or the durable. They are the only report of a
	// consumer edit, and a second, independent report of what the other
	// kinds announce.
	StreamCreated AdvisoryKind = "StreamCreated"
	StreamCall    AdvisoryKind = "StreamCall"
	ConsumerCall  AdvisoryKind = "ConsumerCall"
)

// Advisory names what changed; Consumer is empty for stream advisories.
type Advisory struct {
	Kind     AdvisoryKind
	Stream   string
	Consumer string
	// Own: the call was made on the watching connection itself.
	Own bool
}

// advisorySubjects are the server's action advisories hubflow repairs on.
var advisorySubjects = map[string]AdvisoryKind{
	"$JS.EVENT.ADVISORY.STREAM.DELETED.*":     StreamDeleted,
	"$JS.EVENT.ADVISORY.STREAM.UPDATED.*":     StreamUpdated,
	"$JS.EVENT.ADVISORY.CONSUMER.DELETED.*.*": ConsumerDeleted,
}

// apiAuditSubject carries one audit advisory per JetStream API call in the
// account, read-only calls included. nats-server 2.15.2 sometimes drops
// STREAM.DELETED (the stream's own send loop closes with it), while the
// audit goes through the server's account-wide queue: the two fail
// independently.
const apiAuditSubject = "$JS.EVENT.ADVISORY.API"

// Watch is a running advisory subscription.
type Watch struct {
	subs []*nats.Subscription
}

// Stop ends the subscriptions.
func (w *Watch) Stop() {
	for _, s := range w.subs {
		_ = s.Unsubscribe()
	}
}

// Dropped is how many advisories the client library discarded because the
// handler fell behind (a slow consumer): when it grows, something was lost.
func (w *Watch) Dropped() int {
	n := 0
	for _, s := range w.subs {
		if d, err := s.Dropped(); err == nil {
			n += d
		}
	}
	return n
}

// WatchAdvisories calls handle for every stream or consumer advisory, and
// for every API call that creates, edits or deletes a stream or a durable,
// until Stop; calls made on nc itself are marked Own. The subscriptions live on the shared
// connection, so they come back by themselves after a reconnect; what was
// announced while disconnected is caught by the resync on reconnect.
//
// Only names are passed on; request and response bodies are never kept or
// logged.
func WatchAdvisories(nc *nats.Conn, handle func(Advisory)) (*Watch, error) {
	w := &Watch{}
	subscribe := func(subject string, cb nats.MsgHandler) error {
		sub, err := nc.Subscribe(subject, cb)
		if err != nil {
			w.Stop()
			return fmt.Errorf("subscribe %s: %w", subject, err)
		}
		w.subs = append(w.subs, sub)
		return nil
	}
	for subject, kind := range advisorySubjects {
		if err := subscribe(subject, func(m *nats.Msg) {
			if a, ok := parseAdvisory(kind, m.Subject); ok {
				handle(a)
			}
		}); err != nil {
			return nil, err
		}
	}
	if err := subscribe(apiAuditSubject, func(m *nats.Msg) {
		call, err := decodeAudit(m.Data)
		if err != nil {
			return
		}
		if a, ok := auditTarget(call.Subject, call.Request); ok {
			a.Own = call.madeBy(nc)
			handle(a)
		}
	}); err != nil {
		return nil, err
	}
	return w, nil
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

// apiCall is the part of an audit advisory hubflow reads.
type apiCall struct {
	Subject string
	Request string
	Client  struct {
		ID     uint64 `json:"id"`
		Server string `json:"server"`
	}
}

// madeBy reports whether the call came from nc: a client id is unique on
// the server it connected to.
func (c apiCall) madeBy(nc *nats.Conn) bool {
	id, err := nc.GetClientID()
	return err == nil && c.Client.ID == id && c.Client.Server == nc.ConnectedServerName()
}

// decodeAudit reads an audit advisory's subject, request and caller, and
// stops before the response, which can be large (a stream listing's reply
// holds every stream's config and state) and is never needed.
func decodeAudit(data []byte) (apiCall, error) {
	var call apiCall
	dec := json.NewDecoder(bytes.NewReader(data))
	if _, err := dec.Token(); err != nil { // {
		return call, err
	}
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return call, err
		}
		switch key {
		case "subject":
			err = dec.Decode(&call.Subject)
		case "request":
			err = dec.Decode(&call.Request)
		case "client":
			err = dec.Decode(&call.Client)
		case "response":
			return call, nil
		default:
			var skip json.RawMessage
			err = dec.Decode(&skip)
		}
		if err != nil {
			return call, err
		}
	}
	return call, nil
}

// auditTarget maps an API call to the stream or durable it creates, edits
// or deletes. Reads (INFO, LIST, NAMES, MSG.GET), data operations that no
// reconcile can undo (PURGE, MSG.DELETE, consumer RESET) and placement
// (leader step-down, peer moves) map to nothing, so the manager's own
// listings and its workloads' info calls cost nothing. Stream and consumer
// names cannot hold a dot, so token positions are reliable.
func auditTarget(subject, request string) (Advisory, bool) {
	t := strings.Split(subject, ".")
	if len(t) < 5 || t[0] != "$JS" || t[1] != "API" {
		return Advisory{}, false
	}
	switch t[2] + "." + t[3] {
	case "STREAM.CREATE", "STREAM.RESTORE":
		if len(t) == 5 {
			return Advisory{Kind: StreamCreated, Stream: t[4]}, true
		}
	case "STREAM.UPDATE", "STREAM.DELETE":
		if len(t) == 5 {
			return Advisory{Kind: StreamCall, Stream: t[4]}, true
		}
	case "CONSUMER.CREATE":
		// CREATE.<stream>.<consumer>[.<filter>...] names the consumer;
		// the older CREATE.<stream> names it only in the request.
		if len(t) >= 6 {
			return Advisory{Kind: ConsumerCall, Stream: t[4], Consumer: t[5]}, true
		}
		if name := requestedDurable(request); name != "" {
			return Advisory{Kind: ConsumerCall, Stream: t[4], Consumer: name}, true
		}
	case "CONSUMER.DELETE":
		if len(t) == 6 {
			return Advisory{Kind: ConsumerCall, Stream: t[4], Consumer: t[5]}, true
		}
	case "CONSUMER.DURABLE":
		if len(t) == 7 && t[4] == "CREATE" {
			return Advisory{Kind: ConsumerCall, Stream: t[5], Consumer: t[6]}, true
		}
	}
	return Advisory{}, false
}

// requestedDurable is the durable a consumer create request names; empty
// for an ephemeral consumer, which hubflow never owns.
func requestedDurable(request string) string {
	var req struct {
		Config struct {
			Durable string `json:"durable_name"`
			Name    string `json:"name"`
		} `json:"config"`
	}
	if json.Unmarshal([]byte(request), &req) != nil {
		return ""
	}
	if req.Config.Durable != "" {
		return req.Config.Durable
	}
	return req.Config.Name
}
