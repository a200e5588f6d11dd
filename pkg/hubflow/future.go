package hubflow

import "context"

// Future is the eventual acknowledgement of a message given to PublishAsync.
type Future struct {
	done        chan struct{}
	ack         Ack
	err         error
	subject, id string
}

// sent is the Future of every fire-and-forget message without an ID: there
// is nothing to wait for, so one resolved Future serves them all.
var sent = func() *Future {
	f := &Future{done: make(chan struct{})}
	close(f.done)
	return f
}()

func resolved(ack Ack) *Future {
	if ack == (Ack{}) {
		return sent
	}
	f := &Future{done: make(chan struct{}), ack: ack}
	close(f.done)
	return f
}

func (f *Future) resolve(ack Ack, err error) {
	f.ack, f.err = ack, err
	close(f.done)
}

// Done is closed once the message is acknowledged or given up on.
func (f *Future) Done() <-chan struct{} { return f.done }

// Wait returns the acknowledgement, or a *PublishError saying why there is
// none. If ctx ends first, the error wraps ctx.Err() and the message stays
// in flight: it may still be stored (ErrOutcomeUnknown).
func (f *Future) Wait(ctx context.Context) (Ack, error) {
	select {
	case <-f.done:
		return f.ack, f.err
	default:
	}
	select {
	case <-f.done:
		return f.ack, f.err
	case <-ctx.Done():
		return Ack{}, &PublishError{Subject: f.subject, ID: f.id, Err: ctx.Err(), MaybeStored: true}
	}
}
