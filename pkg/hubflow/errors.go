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
