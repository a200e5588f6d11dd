package hubflow

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/hubflow/hubflow/pkg/binding"
)

// retryHorizon is the longest a message is retried: every attempt waiting
// its full ack timeout, with the retry wait between attempts. It is the
// operator's semantic.ProducerPolicy.RetryHorizon, which an ExactlyOnce
// Topic's duplicate window must cover.
func retryHorizon(b binding.Binding) time.Duration {
	r := time.Duration(max(b.Retries, 0))
	return (r+1)*b.AckTimeout + r*b.RetryWait
}

// Msg is one logical message to publish.
type Msg struct {
	// Subject to publish on; empty means the binding's first literal
	// subject. It must lie inside the binding's subjects.
	Subject string
	Data    []byte
	Header  nats.Header
	// ID is the message's idempotency key, sent as Nats-Msg-Id: the stream
	// stores a repeated id only once inside its duplicate window. With an
	// ExactlyOnce binding an empty ID is generated once per Publish call and
	// kept on every retry of that call; set it yourself (an order or payment
	// id) to make a publish you repeat after an error, or after a restart,
	// safe as well.
	ID string
}

// Ack is the stream's acknowledgement of a published message. An AtMostOnce
// producer gets the zero Ack: nothing is acknowledged.
type Ack struct {
	Stream   string
	Sequence uint64
	// Duplicate: the stream already held a message with this ID (an earlier
	// attempt reached it); the message is stored once, at Sequence.
	Duplicate bool
	ID        string
}

// ProducerStats counts what a Producer did since it was created.
type ProducerStats struct {
	Published  uint64 // messages accepted by Publish/PublishAsync
	Acked      uint64 // acknowledged by the stream, duplicates included
	Duplicates uint64 // acknowledged as a duplicate of an earlier attempt
	Retries    uint64 // attempts sent again after a timeout, a retryable error or a reconnect
	Failed     uint64 // given up on, each reported as a *PublishError
}

// Producer publishes to a Topic the way its binding's policy says:
//
//   - AtMostOnce (wait-for-ack false): a core NATS publish, no
//     acknowledgement, no retry. Publish returns once the message is
//     buffered for the wire.
//   - AtLeastOnce (wait-for-ack true): a JetStream publish that waits for the
//     stream's PubAck and retries on timeout, on no responders, on a broken
//     connection and on retryable JetStream errors (5xx), within the
//     binding's retry horizon ((retries+1)×ack-timeout + retries×retry-wait);
//     a retry after a lost acknowledgement may store the message twice.
//   - ExactlyOnce (message-id true): as AtLeastOnce, and every message
//     carries a Nats-Msg-Id that stays the same on every retry, so the
//     stream stores it once. An acknowledgement marked duplicate counts as
//     success; "duplicate message id is in process" (10158) is retried.
//
// Acknowledged publishes go through one pipeline: up to WithMaxPending
// messages are in flight at once, each with its own reply subject under the
// binding's inbox prefix (no $JS.API permission is needed). Publish waits for
// one message; PublishAsync returns a Future, so one goroutine can keep many
// messages in flight. A Producer is safe for concurrent use.
type Producer struct {
	b              binding.Binding
	o              *options
	horizon        time.Duration // how long one message may be retried
	nc             *nats.Conn
	log            *slog.Logger
	defaultSubject string
	subjectsSeen   subjectCache

	replyPrefix string
	sub         *nats.Subscription
	window      chan struct{}
	stopSweep   chan struct{}
	sweepDone   chan struct{}

	mu             sync.Mutex
	inflight       map[uint64]*pending // by reply token of the current attempt
	waiting        map[*pending]*time.Timer
	nextToken      uint64
	outstanding    int
	idle           chan struct{}
	closing        bool // no new messages
	stopped        bool // no more attempts
	disconnectedAt time.Time

	published, acked, duplicates, retries, failed atomic.Uint64
}

// pending is one logical message of the acknowledged pipeline.
type pending struct {
	msg      *nats.Msg
	id       string
	fut      *Future
	attempts int
	first    time.Time // first attempt
	sentAt   time.Time // latest attempt
	// unanswered counts attempts written to the connection whose reply
	// never came: while it is above zero the message may be stored.
	unanswered int
	observed   func(Ack, error) // the observers' end of this publish, if any
}

// NewProducer connects with a producer binding and returns a Producer that
// follows its policy. It waits until the hub is reachable or ctx ends.
func NewProducer(ctx context.Context, b binding.Binding, opts ...ProducerOption) (*Producer, error) {
	if b.Role != binding.RoleProducer {
		return nil, fmt.Errorf("%w: NewProducer got a %q binding for stream %s", ErrWrongRole, b.Role, b.Stream)
	}
	if len(b.Subjects) == 0 {
		return nil, fmt.Errorf("hubflow: producer binding for stream %s lists no subjects", b.Stream)
	}
	o := newProducerOptions(opts)
	if o.name == "" {
		o.name = "hubflow-producer " + b.Stream
	}
	if b.WaitForAck && b.AckTimeout <= 0 {
		return nil, fmt.Errorf("hubflow: producer binding for stream %s waits for acks but has no %s", b.Stream, binding.KeyAckTimeout)
	}
	p := &Producer{
		b: b, o: o,
		log:            o.logger.With("stream", b.Stream, "semantic", b.Semantic),
		defaultSubject: firstLiteral(b.Subjects),
		horizon:        retryHorizon(b),
		inflight:       map[uint64]*pending{},
		waiting:        map[*pending]*time.Timer{},
	}
	nc, err := connect(ctx, b, o, connEvents{disconnected: p.onDisconnect, reconnected: p.onReconnect})
	if err != nil {
		return nil, err
	}
	p.nc = nc
	if b.WaitForAck {
		p.replyPrefix = nc.NewInbox() + "."
		if p.sub, err = nc.Subscribe(p.replyPrefix+"*", p.onReply); err != nil {
			nc.Close()
			return nil, fmt.Errorf("hubflow: subscribing to the producer's reply inbox: %w", err)
		}
		p.window = make(chan struct{}, o.maxPending)
		p.stopSweep, p.sweepDone = make(chan struct{}), make(chan struct{})
		go p.sweep()
	}
	return p, nil
}

// Publish publishes m and, for an acknowledged semantic, waits for the
// stream's acknowledgement (retries included). If ctx ends first it returns
// a *PublishError wrapping ctx.Err() that carries the message id; the
// message may still be stored, since the attempt in flight is not recalled.
func (p *Producer) Publish(ctx context.Context, m Msg) (Ack, error) {
	if !p.b.WaitForAck {
		subject, header, id, err := p.prepare(m)
		if err != nil {
			return Ack{}, err
		}
		return p.publishUnacknowledged(ctx, subject, m.Data, header, id)
	}
	f, err := p.PublishAsync(ctx, m)
	if err != nil {
		return Ack{}, err
	}
	return f.Wait(ctx)
}

// PublishAsync hands m to the producer and returns a Future of its
// acknowledgement. It blocks only while WithMaxPending messages are already
// in flight, until a slot frees or ctx ends. Once accepted, a message is
// retried as the binding says whatever happens to ctx. Futures of an
// AtMostOnce producer are resolved on return.
func (p *Producer) PublishAsync(ctx context.Context, m Msg) (*Future, error) {
	subject, header, id, err := p.prepare(m)
	if err != nil {
		return nil, err
	}
	if !p.b.WaitForAck {
		ack, err := p.publishUnacknowledged(ctx, subject, m.Data, header, id)
		if err != nil {
			return nil, err
		}
		return resolved(ack), nil
	}
	select {
	case p.window <- struct{}{}:
	case <-ctx.Done():
		return nil, &PublishError{Subject: subject, ID: id, Err: ctx.Err()}
	}
	pe := &pending{
		msg: &nats.Msg{Subject: subject, Data: m.Data, Header: header}, id: id,
		fut: &Future{done: make(chan struct{}), subject: subject, id: id},
	}
	p.mu.Lock()
	if p.closing {
		p.mu.Unlock()
		<-p.window
		return nil, &PublishError{Subject: subject, ID: id, Err: ErrClosed}
	}
	p.outstanding++
	p.mu.Unlock()
	p.published.Add(1)
	if len(p.o.observers) > 0 {
		pe.observed = publishing(p.o.observers, ctx, p.publishInfo(subject, id), header)
	}
	p.send(pe)
	return pe.fut, nil
}

// publishUnacknowledged is an AtMostOnce publish, observed.
func (p *Producer) publishUnacknowledged(ctx context.Context, subject string, data []byte, header nats.Header, id string) (Ack, error) {
	if len(p.o.observers) == 0 {
		return Ack{ID: id}, p.publishCore(subject, data, header, id)
	}
	end := publishing(p.o.observers, ctx, p.publishInfo(subject, id), header)
	err := p.publishCore(subject, data, header, id)
	end(Ack{ID: id}, err)
	return Ack{ID: id}, err
}

func (p *Producer) publishInfo(subject, id string) PublishInfo {
	return PublishInfo{Stream: p.b.Stream, Subject: subject, Semantic: p.b.Semantic, ID: id}
}

// Flush waits until every message accepted so far is acknowledged or given
// up on (each Future says which), or ctx ends.
func (p *Producer) Flush(ctx context.Context) error {
	if !p.b.WaitForAck {
		// Nothing to wait for but the client's write buffer.
		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, p.o.drainTimeout)
			defer cancel()
		}
		if err := p.nc.FlushWithContext(ctx); err != nil {
			return fmt.Errorf("hubflow: flush: %w", err)
		}
		return nil
	}
	p.mu.Lock()
	if p.outstanding == 0 {
		p.mu.Unlock()
		return nil
	}
	if p.idle == nil {
		p.idle = make(chan struct{})
	}
	idle := p.idle
	p.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("hubflow: flush: %w", ctx.Err())
	}
}

// Close stops accepting messages, waits (bounded by ctx and the drain
// timeout) for the ones in flight, fails those still unacknowledged with
// ErrClosed, and closes the connection. It returns an error if anything was
// left unacknowledged.
func (p *Producer) Close(ctx context.Context) error {
	p.mu.Lock()
	if p.closing {
		p.mu.Unlock()
		return nil
	}
	p.closing = true
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, p.o.drainTimeout)
	defer cancel()
	var errs []error
	if err := p.Flush(ctx); err != nil {
		errs = append(errs, err)
	}
	if p.b.WaitForAck {
		close(p.stopSweep)
		<-p.sweepDone
		p.mu.Lock()
		p.stopped = true
		var left []*pending
		for tok, pe := range p.inflight {
			delete(p.inflight, tok)
			left = append(left, pe)
		}
		for pe, t := range p.waiting {
			t.Stop()
			delete(p.waiting, pe)
			left = append(left, pe)
		}
		p.mu.Unlock()
		for _, pe := range left {
			p.fail(pe, ErrClosed)
		}
		if len(left) > 0 {
			errs = append(errs, fmt.Errorf("hubflow: producer closed with %d message(s) unacknowledged", len(left)))
		}
	}
	p.nc.Close()
	return errors.Join(errs...)
}

// Stats returns the producer's counters.
func (p *Producer) Stats() ProducerStats {
	return ProducerStats{
		Published: p.published.Load(), Acked: p.acked.Load(), Duplicates: p.duplicates.Load(),
		Retries: p.retries.Load(), Failed: p.failed.Load(),
	}
}

// Conn is the producer's connection, for status and metrics. Closing it
// ends the producer like a crash would.
func (p *Producer) Conn() *nats.Conn { return p.nc }

// Binding is the binding the producer was made from.
func (p *Producer) Binding() binding.Binding { return p.b }

// prepare checks m against the binding and returns the subject, the headers
// (with Nats-Msg-Id when there is an id) and the id to send.
func (p *Producer) prepare(m Msg) (string, nats.Header, string, error) {
	subject := m.Subject
	if subject == "" {
		if subject = p.defaultSubject; subject == "" {
			return "", nil, "", fmt.Errorf("hubflow: no subject given and the binding's subjects %v name none literally", p.b.Subjects)
		}
	}
	if !p.allowed(subject) {
		return "", nil, "", fmt.Errorf("%w: %q is not inside %v", ErrSubjectNotAllowed, subject, p.b.Subjects)
	}
	id := m.ID
	if id == "" && p.b.MessageID {
		id = nuid.Next()
	}
	if strings.ContainsAny(id, "\r\n") {
		return "", nil, "", fmt.Errorf("hubflow: message id %q holds a line break", id)
	}
	header := m.Header
	if id != "" || len(p.o.observers) > 0 {
		// The message's own copy: the id, and what observers inject (trace
		// context), must not land in the caller's header.
		header = make(nats.Header, len(m.Header)+1)
		for k, v := range m.Header {
			header[k] = v
		}
		if id != "" {
			header.Set(jetstream.MsgIDHeader, id)
		}
	}
	return subject, header, id, nil
}

// allowed reports whether subject lies inside the binding's subjects,
// remembering the answer: a producer often publishes on few subjects, many
// times.
func (p *Producer) allowed(subject string) bool {
	if ok, known := p.subjectsSeen.load(subject); known {
		return ok
	}
	ok := literal(subject) && slices.ContainsFunc(p.b.Subjects, func(s string) bool { return subjectMatches(s, subject) })
	p.subjectsSeen.store(subject, ok)
	return ok
}

// maxCachedSubjects bounds the subjects a producer remembers verdicts for:
// per-entity subjects (orders.<id>) are distinct for every message, and
// checking one again costs well under a microsecond.
const maxCachedSubjects = 4096

// subjectCache remembers up to maxCachedSubjects verdicts; when full it
// starts afresh, so memory stays bounded and the hot subjects come back at
// once.
type subjectCache struct {
	mu sync.RWMutex
	m  map[string]bool
}

func (c *subjectCache) load(subject string) (ok, known bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	ok, known = c.m[subject]
	return ok, known
}

func (c *subjectCache) store(subject string, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxCachedSubjects {
		c.m = make(map[string]bool, 64)
	}
	c.m[subject] = ok
}

func (c *subjectCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}

// publishCore is AtMostOnce's fire-and-forget publish.
func (p *Producer) publishCore(subject string, data []byte, header nats.Header, id string) error {
	var err error
	if header == nil {
		err = p.nc.Publish(subject, data)
	} else {
		err = p.nc.PublishMsg(&nats.Msg{Subject: subject, Data: data, Header: header})
	}
	if err != nil {
		if errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrConnectionDraining) {
			err = errors.Join(ErrClosed, err)
		}
		return &PublishError{Subject: subject, ID: id, Attempts: 1, Err: err}
	}
	p.published.Add(1)
	return nil
}
