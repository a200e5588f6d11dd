// Package deadletter holds the pure parts of hubflow's dead letters: what
// the server announces when a durable gives up on a message, where a
// Consumer's dead letters are published, and how a dead letter and its
// replay are built from the message they carry. The moving itself (reading
// announcements, fetching originals, publishing) lives in controllers.
package deadletter

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/hubflow/hubflow/pkg/binding"
)

// The server's advisories for a message a durable gives up on, one per
// message: MaxDeliveries when it failed its last allowed delivery, Terminated
// when the client terminated it (AckTerm, with an optional reason).
const (
	maxDeliveriesPrefix = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES."
	terminatedPrefix    = "$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED."
)

// CaptureSubjects are the advisory subjects the capture stream stores, for
// every durable of the account: they are stored even while no hubflow
// process runs, so a message that dies then is still moved later.
var CaptureSubjects = []string{maxDeliveriesPrefix + ">", terminatedPrefix + ">"}

// Reason says why a message became a dead letter.
type Reason string

const (
	ReasonMaxDeliveries Reason = "MaxDeliveries"
	ReasonTerminated    Reason = "Terminated"
)

// Advisory is a durable giving up on one message.
type Advisory struct {
	Reason     Reason
	Stream     string
	Consumer   string // the durable's name
	StreamSeq  uint64
	Deliveries uint64
	// Error is the client's reason for terminating the message, if it gave one.
	Error string
	// Time is when the server gave up on the message.
	Time time.Time
}

// ID names the announcement: one per message a durable gives up on; its
// time tells a recreated stream's sequence from the old one's.
func (a Advisory) ID() string {
	return string(a.Reason) + ":" + a.Stream + ":" + a.Consumer + ":" + strconv.FormatUint(a.StreamSeq, 10) + ":" + strconv.FormatInt(a.Time.UnixNano(), 10)
}

// ParseAdvisory reads a captured advisory. The subject decides its kind; the
// body must name the stream, durable and sequence.
func ParseAdvisory(subject string, data []byte) (Advisory, error) {
	var a Advisory
	switch {
	case strings.HasPrefix(subject, maxDeliveriesPrefix):
		a.Reason = ReasonMaxDeliveries
	case strings.HasPrefix(subject, terminatedPrefix):
		a.Reason = ReasonTerminated
	default:
		return a, fmt.Errorf("%s is not a dead-letter advisory", subject)
	}
	var body struct {
		Stream     string    `json:"stream"`
		Consumer   string    `json:"consumer"`
		StreamSeq  uint64    `json:"stream_seq"`
		Deliveries uint64    `json:"deliveries"`
		Reason     string    `json:"reason"`
		Time       time.Time `json:"timestamp"`
	}
	if err := json.Unmarshal(data, &body); err != nil {
		return a, fmt.Errorf("advisory on %s: %w", subject, err)
	}
	if body.Stream == "" || body.Consumer == "" || body.StreamSeq == 0 {
		return a, fmt.Errorf("advisory on %s names no stream, durable or sequence", subject)
	}
	a.Stream, a.Consumer, a.StreamSeq, a.Deliveries, a.Time = body.Stream, body.Consumer, body.StreamSeq, body.Deliveries, body.Time
	if a.Reason == ReasonTerminated {
		a.Error = body.Reason
	}
	return a, nil
}

// ErrNoWildcardSubject: a dead-letter Topic needs a subject ending in ".>"
// so each Consumer's dead letters get subjects of their own.
var ErrNoWildcardSubject = errors.New(`has no subject ending in ".>"`)

// Subject is where a Consumer's dead letters are published: below the
// first of the dead-letter Topic's subjects that ends in ".>", on
// "<prefix>.<source stream>.<durable>". Stream and durable names hold no
// dots, so the subject names one Consumer and its held count is one
// subject's count.
func Subject(deadLetterTopicSubjects []string, stream, durable string) (string, error) {
	for _, s := range deadLetterTopicSubjects {
		if prefix, ok := strings.CutSuffix(s, ".>"); ok && !strings.ContainsAny(prefix, "*>") {
			return prefix + "." + stream + "." + durable, nil
		}
	}
	return "", ErrNoWildcardSubject
}

// Original is the message a durable gave up on, as the stream stores it.
type Original struct {
	Subject  string
	Sequence uint64
	Header   nats.Header
	Data     []byte
	Stored   time.Time
}

// Key is the original's idempotency key for consumers
// (binding.IdempotencyKey).
func (o Original) Key(stream string) string {
	return binding.IdempotencyKey(o.Header, stream, o.Sequence, o.Stored)
}

// Provenance headers every dead letter carries.
const (
	HeaderReason     = "Hubflow-Dead-Letter-Reason"
	HeaderError      = "Hubflow-Dead-Letter-Error"
	HeaderTopic      = "Hubflow-Dead-Letter-Topic"    // "<namespace>/<name>" of the source Topic
	HeaderConsumer   = "Hubflow-Dead-Letter-Consumer" // "<namespace>/<name>" of the Consumer
	HeaderStream     = "Hubflow-Dead-Letter-Stream"
	HeaderSequence   = "Hubflow-Dead-Letter-Sequence"
	HeaderDeliveries = "Hubflow-Dead-Letter-Deliveries"
	HeaderSubject    = "Hubflow-Dead-Letter-Subject"
	HeaderPublished  = "Hubflow-Dead-Letter-Published" // when the source stream stored it
	HeaderTime       = "Hubflow-Dead-Letter-Time"      // when the server gave up on it
	HeaderKey        = "Hubflow-Dead-Letter-Key"       // its idempotency key for consumers
	// originalPrefix keeps the original's own "Nats-" headers: published as
	// they are, the server would act on them (a message id, an expected
	// sequence) instead of carrying them.
	originalPrefix = "Hubflow-Original-"
	natsPrefix     = "Nats-"
)

// Source is what a dead letter says about where it came from.
type Source struct {
	Topic    string // "<namespace>/<name>"
	Consumer string // "<namespace>/<name>"
}

// MessageID is a dead letter's Nats-Msg-Id: one per original message, per
// durable, per stream incarnation (the stored time tells a recreated
// stream's sequence 1 from the old one's). The dead-letter stream drops a
// second publish of it within its duplicate window; past the window the
// mover looks for it before publishing again.
func MessageID(a Advisory, o Original) string {
	return "hubflow-dl:" + a.Stream + ":" + strconv.FormatUint(o.Sequence, 10) + ":" +
		strconv.FormatInt(o.Stored.UnixNano(), 10) + ":" + a.Consumer
}

// Letter builds the dead letter for original: its payload, its headers
// (its "Nats-" ones renamed "Hubflow-Original-Nats-..."), the provenance
// headers, and its message id.
func Letter(subject string, src Source, a Advisory, o Original) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Data = o.Data
	for name, values := range o.Header {
		if strings.HasPrefix(name, natsPrefix) {
			name = originalPrefix + name
		}
		m.Header[name] = append([]string(nil), values...)
	}
	m.Header.Set(HeaderReason, string(a.Reason))
	if a.Error != "" {
		m.Header.Set(HeaderError, a.Error)
	}
	m.Header.Set(HeaderTopic, src.Topic)
	m.Header.Set(HeaderConsumer, src.Consumer)
	m.Header.Set(HeaderStream, a.Stream)
	m.Header.Set(HeaderSequence, strconv.FormatUint(o.Sequence, 10))
	m.Header.Set(HeaderDeliveries, strconv.FormatUint(a.Deliveries, 10))
	m.Header.Set(HeaderSubject, o.Subject)
	m.Header.Set(HeaderPublished, o.Stored.UTC().Format(time.RFC3339Nano))
	m.Header.Set(HeaderTime, a.Time.UTC().Format(time.RFC3339Nano))
	m.Header.Set(HeaderKey, o.Key(a.Stream))
	m.Header.Set(nats.MsgIdHdr, MessageID(a, o))
	return m
}

// Replay builds the message that sends a dead letter back to its source
// subject: the original payload and headers (its own "Nats-" headers other
// than a message id are dropped: an expected sequence or a rollup would act
// again), the original's idempotency key in Hubflow-Idempotency-Key, so a
// consumer that processed the original skips it, and a message id of its
// own, stable across replays of this dead letter, so a replay retried
// within the source's duplicate window is stored once. letterStream,
// letterSeq and letterStored name the dead letter.
func Replay(letterStream string, letterSeq uint64, letterStored time.Time, letter nats.Header, data []byte) (*nats.Msg, error) {
	subject, key := letter.Get(HeaderSubject), letter.Get(HeaderKey)
	if subject == "" || key == "" {
		return nil, fmt.Errorf("message %d of stream %s is not a hubflow dead letter (no %s or %s header)",
			letterSeq, letterStream, HeaderSubject, HeaderKey)
	}
	m := nats.NewMsg(subject)
	m.Data = data
	for name, values := range letter {
		switch {
		case strings.HasPrefix(name, "Hubflow-Dead-Letter-"), strings.HasPrefix(name, natsPrefix):
			continue
		case strings.HasPrefix(name, originalPrefix+natsPrefix):
			continue // the server already acted on these once
		}
		m.Header[name] = append([]string(nil), values...)
	}
	m.Header.Set(binding.IdempotencyKeyHeader, key)
	m.Header.Set(nats.MsgIdHdr, "hubflow-replay:"+letterStream+":"+strconv.FormatUint(letterSeq, 10)+":"+strconv.FormatInt(letterStored.UnixNano(), 10))
	return m, nil
}

// Selection is which dead letters a replay request names: all of them, or
// the listed dead-letter stream sequences.
type Selection struct {
	All       bool
	Sequences map[uint64]bool
}

// ParseSelection reads the value of the replay annotation.
func ParseSelection(v string) (Selection, error) {
	v = strings.TrimSpace(v)
	if v == "all" {
		return Selection{All: true}, nil
	}
	s := Selection{Sequences: map[uint64]bool{}}
	for _, f := range strings.Split(v, ",") {
		seq, err := strconv.ParseUint(strings.TrimSpace(f), 10, 64)
		if err != nil || seq == 0 {
			return Selection{}, fmt.Errorf(`%q: want "all" or a comma-separated list of dead-letter stream sequences (kubectl get consumer -o yaml shows status.deadLetter)`, v)
		}
		s.Sequences[seq] = true
	}
	return s, nil
}

// Includes says whether the dead letter at seq is selected.
func (s Selection) Includes(seq uint64) bool { return s.All || s.Sequences[seq] }
