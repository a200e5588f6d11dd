package hubflow

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// doubleAckAttempts is how often an unconfirmed double ack is sent.
const doubleAckAttempts = 3

// doubleAcks sends the double acknowledgements of one Run without waiting
// for each in turn. Every ack goes out with a reply subject of its own under
// one inbox subscription; the server's confirmation arriving there resolves
// it. An ack not confirmed within the timeout is sent again, up to
// doubleAckAttempts times: an unconfirmed ack may still have landed, and a
// redelivery of a message whose ack was lost is what Dedup is for. A
// message's key stays claimed until its ack is resolved, so a redelivery
// cannot overtake it.
//
// This is DoubleAck (an ack that waits for the server's reply) with many
// replies awaited at once, instead of one round trip per message.
type doubleAcks struct {
	c       *Consumer
	prefix  string // reply subjects: prefix + a counter
	sub     *nats.Subscription
	timeout time.Duration

	mu      sync.Mutex
	next    uint64
	pending map[string]*pendingAck // by reply subject
	open    sync.WaitGroup         // one per pending ack

	stop    chan struct{}
	stopped chan struct{}
}

type pendingAck struct {
	d        *Delivery
	reply    string
	attempts int
	due      time.Time // when to send again, or give up
}

var ackBody = []byte("+ACK")

// noResponders is the status a request gets when nothing listens on its
// subject: the durable's leader is moving.
const noResponders = "503"

func (c *Consumer) startDoubleAcks() (*doubleAcks, error) {
	a := &doubleAcks{
		c:       c,
		prefix:  c.nc.NewInbox() + ".",
		timeout: min(max(c.b.AckWait/2, time.Second), 5*time.Second),
		pending: map[string]*pendingAck{},
		stop:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	sub, err := c.nc.Subscribe(a.prefix+"*", a.confirmed)
	if err != nil {
		return nil, fmt.Errorf("hubflow: subscribing to acknowledgement confirmations: %w", err)
	}
	a.sub = sub
	go a.resendLoop()
	return a, nil
}

// send double-acks d; the key is released once the ack is resolved.
func (a *doubleAcks) send(d *Delivery) {
	a.mu.Lock()
	a.next++
	p := &pendingAck{d: d, reply: a.prefix + strconv.FormatUint(a.next, 36), attempts: 1, due: time.Now().Add(a.timeout)}
	a.pending[p.reply] = p
	a.open.Add(1)
	a.mu.Unlock()
	if err := a.c.nc.PublishRequest(d.msg.Reply(), p.reply, ackBody); err != nil {
		a.resolve(p.reply, err)
	}
}

// confirmed is the server's answer to one ack.
func (a *doubleAcks) confirmed(m *nats.Msg) {
	if len(m.Data) == 0 && m.Header.Get("Status") == noResponders {
		a.mu.Lock()
		if p, ok := a.pending[m.Subject]; ok {
			p.due = time.Now().Add(time.Duration(p.attempts) * 100 * time.Millisecond)
		}
		a.mu.Unlock()
		return
	}
	a.resolve(m.Subject, nil)
}

// resolve ends the ack sent with reply, once: a late or repeated
// confirmation finds nothing.
func (a *doubleAcks) resolve(reply string, err error) {
	a.mu.Lock()
	p, ok := a.pending[reply]
	delete(a.pending, reply)
	a.mu.Unlock()
	if !ok {
		return
	}
	c := a.c
	if err != nil {
		c.ackFailures.Add(1)
		c.log.Warn("acknowledgement not delivered; the message comes back after the ack wait",
			"subject", p.d.Subject, "sequence", p.d.Sequence, "error", err)
	} else {
		c.settled.Add(1)
		c.acked.Add(1)
	}
	c.release(p.d.IdempotencyKey)
	a.open.Done()
}

// resendLoop sends again the acks whose time ran out, and gives up on
// those sent doubleAckAttempts times or on a closed connection.
func (a *doubleAcks) resendLoop() {
	defer close(a.stopped)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var again, failed []*pendingAck
	for {
		select {
		case <-a.stop:
			return
		case now := <-tick.C:
			if a.c.nc.IsClosed() {
				a.failAll(nats.ErrConnectionClosed)
				continue
			}
			again, failed = again[:0], failed[:0]
			a.mu.Lock()
			for _, p := range a.pending {
				switch {
				case now.Before(p.due):
				case p.attempts >= doubleAckAttempts:
					failed = append(failed, p)
				default:
					p.attempts++
					p.due = now.Add(a.timeout)
					again = append(again, p)
				}
			}
			a.mu.Unlock()
			for _, p := range again {
				if err := a.c.nc.PublishRequest(p.d.msg.Reply(), p.reply, ackBody); err != nil {
					a.resolve(p.reply, err)
				}
			}
			for _, p := range failed {
				a.resolve(p.reply, fmt.Errorf("no confirmation after %d attempts: %w", doubleAckAttempts, nats.ErrTimeout))
			}
		}
	}
}

func (a *doubleAcks) failAll(err error) {
	a.mu.Lock()
	replies := make([]string, 0, len(a.pending))
	for r := range a.pending {
		replies = append(replies, r)
	}
	a.mu.Unlock()
	for _, r := range replies {
		a.resolve(r, err)
	}
}

// close waits until every ack sent is resolved, giving up on those still
// open when ctx ends. Nothing may be sent once close is called.
func (a *doubleAcks) close(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		a.open.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		a.failAll(errors.Join(errors.New("drain timeout"), ctx.Err()))
		<-done
	}
	close(a.stop)
	<-a.stopped
	_ = a.sub.Unsubscribe()
}
