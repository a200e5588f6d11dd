package hubflow

import (
	"errors"
	"fmt"
	"time"
)

var (
	// ErrClosed is returned by a Producer or Consumer after Close, or when
	// its connection to the hub was closed for good.
	ErrClosed = errors.New("hubflow: closed")
	// ErrSubjectNotAllowed is returned for a subject outside the binding's
	// subjects: the server would refuse it (a permission violation that the
	// client otherwise only sees as a timeout).
	ErrSubjectNotAllowed = errors.New("hubflow: subject not allowed by the binding")
	// ErrWrongRole is returned when a consumer binding is given to
	// NewProducer, or a producer binding to NewConsumer.
	ErrWrongRole = errors.New("hubflow: binding is for the other role")
	// ErrPoison marks a handler error as permanent: the message is
	// terminated instead of redelivered. Wrap with Poison.
	ErrPoison = errors.New("hubflow: poison message")
	// ErrWrongStream: the acknowledgement came from another stream than the
	// binding's, one that captured its subjects. The message is not in its
	// Topic; the publish is failed, never reported as a success.
	ErrWrongStream = errors.New("hubflow: acknowledged by another stream than the binding's")
)

// The two outcomes of a failed publish, matched with errors.Is on the
// *PublishError a publish returns (ErrClosed, ErrAckTimeout and the
// JetStream error say why; these say what the caller may assume).
var (
	// ErrNotStored: no attempt can have been stored. Every attempt either
	// never left the client (the connection was down: hubflow does not
	// buffer publishes while reconnecting) or was answered with a refusal.
	// Publishing again is safe for every semantic.
	ErrNotStored = errors.New("hubflow: not stored")
	// ErrOutcomeUnknown: an attempt reached the connection and was never
	// answered, so the stream may have stored it. For ExactlyOnce, publish
	// again with the same ID within the duplicate window (the stream then
	// keeps one copy); otherwise a retry may store a duplicate.
	ErrOutcomeUnknown = errors.New("hubflow: outcome unknown, may be stored")
)

// PublishError says what happened to a message that was not acknowledged:
// which subject and message id, after how many attempts, and the last cause
// (an ack timeout, a JetStream API error, a closed connection, the caller's
// context). For ExactlyOnce, publishing again with the same ID inside the
// Topic's duplicate window is safe: the stream stores it at most once.
type PublishError struct {
	Subject  string
	ID       string // the Nats-Msg-Id sent, empty when the policy sets none
	Attempts int
	Err      error
	// MaybeStored is true when some attempt went out and was never
	// answered: errors.Is(err, ErrOutcomeUnknown); else ErrNotStored.
	MaybeStored bool
}

// Is lets errors.Is tell ErrNotStored from ErrOutcomeUnknown.
func (e *PublishError) Is(target error) bool {
	switch target {
	case ErrOutcomeUnknown:
		return e.MaybeStored
	case ErrNotStored:
		return !e.MaybeStored
	}
	return false
}

func (e *PublishError) Error() string {
	id := ""
	if e.ID != "" {
		id = fmt.Sprintf(" (message id %q)", e.ID)
	}
	return fmt.Sprintf("hubflow: publish to %q%s not acknowledged after %d attempt(s): %v", e.Subject, id, e.Attempts, e.Err)
}

func (e *PublishError) Unwrap() error { return e.Err }

// ErrAckTimeout is the cause of a PublishError whose last attempt got no
// acknowledgement in time: the hub was unreachable, electing a leader, or
// the credentials do not allow the subject (the server then reports a
// permission violation on the connection, which is logged).
var ErrAckTimeout = errors.New("no acknowledgement from the stream in time")

// Poison marks err as permanent: an acknowledging consumer terminates the
// message (it is not redelivered) instead of asking for redelivery.
func Poison(err error) error {
	if err == nil {
		err = errors.New("rejected by the handler")
	}
	return &poisonError{err}
}

type poisonError struct{ err error }

func (e *poisonError) Error() string        { return "poison: " + e.err.Error() }
func (e *poisonError) Unwrap() error        { return e.err }
func (e *poisonError) Is(target error) bool { return target == ErrPoison }

// RetryAfter asks an acknowledging consumer to redeliver the message after
// delay instead of the binding's redelivery delay (for example the
// Retry-After of a rate-limited API).
func RetryAfter(err error, delay time.Duration) error {
	return &retryError{err: err, delay: delay}
}

type retryError struct {
	err   error
	delay time.Duration
}

func (e *retryError) Error() string {
	return fmt.Sprintf("retry after %s: %v", e.delay, e.err)
}
func (e *retryError) Unwrap() error { return e.err }
