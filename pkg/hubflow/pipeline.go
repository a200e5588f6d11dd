package hubflow

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// send makes one attempt: a fresh reply token, so a late reply to an
// earlier attempt is recognised and ignored.
func (p *Producer) send(pe *pending) {
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		p.fail(pe, ErrClosed)
		return
	}
	p.nextToken++
	tok := p.nextToken
	pe.attempts++
	pe.sentAt = time.Now()
	if pe.attempts == 1 {
		pe.first = pe.sentAt
	}
	p.inflight[tok] = pe
	p.mu.Unlock()
	out := &nats.Msg{Subject: pe.msg.Subject, Reply: p.replyPrefix + formatToken(tok), Data: pe.msg.Data, Header: pe.msg.Header}
	err := p.nc.PublishMsg(out)
	if err == nil {
		p.mu.Lock()
		pe.unanswered++
		p.mu.Unlock()
		return
	}
	p.mu.Lock()
	_, mine := p.inflight[tok]
	delete(p.inflight, tok)
	p.mu.Unlock()
	if !mine {
		return // a reconnect or Close took it over
	}
	switch {
	case errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrConnectionDraining):
		p.fail(pe, errors.Join(ErrClosed, err))
	case errors.Is(err, nats.ErrMaxPayload), errors.Is(err, nats.ErrBadSubject),
		errors.Is(err, nats.ErrHeadersNotSupported), errors.Is(err, nats.ErrBadHeaderMsg):
		p.fail(pe, err) // no attempt can succeed
	default:
		// A full reconnect buffer, a write on a connection that just broke:
		// the next attempt goes out on the reconnected connection.
		p.retry(pe, err)
	}
}

// onReply handles the stream's answer to one attempt.
func (p *Producer) onReply(m *nats.Msg) {
	tok, ok := parseToken(m.Subject[len(p.replyPrefix):])
	if !ok {
		return
	}
	p.mu.Lock()
	pe := p.inflight[tok]
	delete(p.inflight, tok)
	if pe != nil {
		pe.unanswered--
	}
	p.mu.Unlock()
	if pe == nil {
		return // a reply to an attempt already timed out or resent
	}
	ack, err := parsePubAck(m)
	if err == nil && ack.Stream != p.b.Stream {
		err = fmt.Errorf("%w: stream %q answered, the binding names %q", ErrWrongStream, ack.Stream, p.b.Stream)
	}
	switch {
	case errors.Is(err, ErrWrongStream):
		p.fail(pe, err)
	case err == nil:
		ack.ID = pe.id
		p.acked.Add(1)
		if ack.Duplicate {
			p.duplicates.Add(1)
		}
		p.finish(pe, ack, nil)
	case retryable(err):
		p.retry(pe, err)
	default:
		p.fail(pe, err)
	}
}

// errNoStream is the cause when no stream listens on the subject (yet).
var errNoStream = errors.New("no stream answered on the subject (no responders)")

func parsePubAck(m *nats.Msg) (Ack, error) {
	if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
		return Ack{}, errNoStream
	}
	var r pubAckResponse
	if err := r.decode(m.Data); err != nil {
		return Ack{}, err
	}
	if r.Error != nil {
		return Ack{}, r.Error
	}
	return Ack{Stream: r.Stream, Sequence: r.Sequence, Duplicate: r.Duplicate}, nil
}

// errIDInProcess is JetStream's "duplicate message id is in process": an
// earlier attempt with the same id is being stored right now.
const errIDInProcess jetstream.ErrorCode = 10158

// retryable: no answer, no stream yet, or a JetStream error that a later
// attempt can overcome (5xx: leader election, temporarily unavailable,
// storage busy; 10158: the same id in flight).
func retryable(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.Code >= 500 || apiErr.ErrorCode == errIDInProcess
	}
	return true
}

// retry schedules another attempt after the binding's retry wait, unless
// that attempt would start too late. The limit is time, not a count: the
// last attempt must go out no later than retryHorizon − ackTimeout after the
// first, so that it is answered or abandoned within the horizon the
// operator checked against the Topic's duplicate window. With only timeouts
// that allows exactly the binding's retries; quick refusals (no stream
// answering while a leader is elected) are retried every retry wait within
// the same horizon instead of using up the count in a few seconds.
func (p *Producer) retry(pe *pending, cause error) {
	p.retryAfter(pe, cause, max(p.b.RetryWait, minRetryWait))
}

func (p *Producer) retryAfter(pe *pending, cause error, wait time.Duration) {
	// Half an ack timeout of slack absorbs the sweeper's lateness in
	// noticing a timeout; the last attempt still starts at least half an
	// ack timeout before the horizon ends, so inside the duplicate window.
	if time.Since(pe.first)+wait > p.horizon-p.b.AckTimeout/2 {
		p.fail(pe, cause)
		return
	}
	p.retries.Add(1)
	if wait == 0 {
		p.send(pe)
		return
	}
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		p.fail(pe, errors.Join(ErrClosed, cause))
		return
	}
	p.waiting[pe] = time.AfterFunc(wait, func() {
		p.mu.Lock()
		_, mine := p.waiting[pe]
		delete(p.waiting, pe)
		p.mu.Unlock()
		if mine {
			p.send(pe)
		}
	})
	p.mu.Unlock()
}

// minRetryWait keeps a zero retry wait from resending in a tight loop while
// the stream refuses at once.
const minRetryWait = 10 * time.Millisecond

func (p *Producer) fail(pe *pending, cause error) {
	p.failed.Add(1)
	p.mu.Lock()
	maybe := pe.unanswered > 0
	p.mu.Unlock()
	p.finish(pe, Ack{}, &PublishError{Subject: pe.msg.Subject, ID: pe.id, Attempts: pe.attempts, Err: cause, MaybeStored: maybe})
}

func (p *Producer) finish(pe *pending, ack Ack, err error) {
	if pe.observed != nil {
		pe.observed(ack, err)
	}
	pe.fut.resolve(ack, err)
	<-p.window
	p.mu.Lock()
	p.outstanding--
	if p.outstanding == 0 && p.idle != nil {
		close(p.idle)
		p.idle = nil
	}
	p.mu.Unlock()
}

// sweep times out attempts whose acknowledgement is overdue. One scan of
// the in-flight set replaces a timer per message.
func (p *Producer) sweep() {
	defer close(p.sweepDone)
	every := min(max(p.b.AckTimeout/4, 5*time.Millisecond), time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	var overdue []*pending
	for {
		select {
		case <-p.stopSweep:
			return
		case now := <-t.C:
			overdue = overdue[:0]
			p.mu.Lock()
			for tok, pe := range p.inflight {
				if now.Sub(pe.sentAt) >= p.b.AckTimeout {
					delete(p.inflight, tok)
					overdue = append(overdue, pe)
				}
			}
			p.mu.Unlock()
			for _, pe := range overdue {
				p.retry(pe, ErrAckTimeout)
			}
		}
	}
}

func (p *Producer) onDisconnect() {
	p.mu.Lock()
	p.disconnectedAt = time.Now()
	p.mu.Unlock()
}

// onReconnect resends at once every attempt sent before the connection
// dropped: its acknowledgement, if any, went to the old connection. No
// attempt is made while disconnected: an acknowledging producer's
// connection has no reconnect buffer (see connect), so nothing written
// during an outage reaches the stream after it, possibly past the
// duplicate window.
func (p *Producer) onReconnect() {
	if !p.b.WaitForAck {
		return
	}
	p.mu.Lock()
	var lost []*pending
	for tok, pe := range p.inflight {
		if pe.sentAt.Before(p.disconnectedAt) {
			delete(p.inflight, tok)
			lost = append(lost, pe)
		}
	}
	p.mu.Unlock()
	if len(lost) > 0 {
		p.log.Info("resending publishes whose acknowledgement was lost with the connection", "count", len(lost))
	}
	for _, pe := range lost {
		p.retryAfter(pe, nats.ErrDisconnected, 0)
	}
}

// pubAckResponse is the stream's reply to a publish: a PubAck or an error.
type pubAckResponse struct {
	Error     *jetstream.APIError `json:"error,omitempty"`
	Stream    string              `json:"stream"`
	Sequence  uint64              `json:"seq"`
	Duplicate bool                `json:"duplicate,omitempty"`
}

func (r *pubAckResponse) decode(data []byte) error {
	if err := json.Unmarshal(data, r); err != nil {
		return fmt.Errorf("unreadable acknowledgement %q: %w", data, err)
	}
	if r.Error == nil && r.Stream == "" {
		return fmt.Errorf("acknowledgement names no stream: %q", data)
	}
	return nil
}

// Reply tokens are the last token of an attempt's reply subject.
func formatToken(t uint64) string { return strconv.FormatUint(t, 36) }

func parseToken(s string) (uint64, bool) {
	t, err := strconv.ParseUint(s, 36, 64)
	return t, err == nil
}
