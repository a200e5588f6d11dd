package hubflow

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/hubflow/hubflow/pkg/binding"
)

// reconnectWait is short: a hub node that restarts or loses leadership is
// back, or replaced by another node of the URL list, within seconds.
const reconnectWait = 250 * time.Millisecond

// connEvents are what a Producer or Consumer wants to hear about its
// connection, on top of the logging every connection does.
type connEvents struct {
	disconnected func()
	reconnected  func()
}

// connect dials the hub the binding names with its credentials and inbox
// prefix, and waits until the connection is up or ctx ends. The connection
// reconnects forever afterwards; each change is logged.
func connect(ctx context.Context, b binding.Binding, o *options, ev connEvents) (*nats.Conn, error) {
	log := o.logger.With("connection", o.name)
	var lastErr atomic.Value // error of the latest failed (re)connect attempt
	opts := []nats.Option{
		nats.Name(o.name),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.ReconnectWait(reconnectWait),
		nats.DrainTimeout(o.drainTimeout),
		reconnectBuffer(b),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if ev.disconnected != nil {
				ev.disconnected()
			}
			if err != nil {
				log.Warn("disconnected from the hub, reconnecting", "error", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("reconnected to the hub", "server", nc.ConnectedServerName())
			if ev.reconnected != nil {
				ev.reconnected()
			}
		}),
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				lastErr.Store(err)
				log.Debug("connection attempt failed", "error", err)
			}
		}),
		// The server reports what it refused (a subject outside the
		// credentials' permissions) only here; the call itself times out.
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			attrs := []any{"error", err}
			if sub != nil {
				attrs = append(attrs, "subscription", sub.Subject)
			}
			log.Error("the hub reported an error on the connection", attrs...)
		}),
	}
	if b.Inbox != "" {
		opts = append(opts, nats.CustomInboxPrefix(b.Inbox))
	}
	creds, err := credentials(b, o)
	if err != nil {
		return nil, err
	}
	if creds != nil {
		opts = append(opts, creds)
	}
	opts = append(opts, o.natsOptions...)

	nc, err := nats.Connect(b.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("hubflow: connecting to %s: %w", redactURLs(b.URL), err)
	}
	status := nc.StatusChanged(nats.CONNECTED, nats.CLOSED)
	defer nc.RemoveStatusListener(status)
	for !nc.IsConnected() {
		select {
		case <-status:
			if nc.IsClosed() {
				return nil, fmt.Errorf("hubflow: connecting to %s: %w", redactURLs(b.URL), errors.Join(ErrClosed, nc.LastError()))
			}
		case <-ctx.Done():
			nc.Close()
			cause, _ := lastErr.Load().(error)
			if cause == nil {
				cause = errors.New("no attempt finished")
			}
			return nil, fmt.Errorf("hubflow: connecting to %s: %w (last attempt: %v)", redactURLs(b.URL), ctx.Err(), cause)
		}
	}
	log.Debug("connected to the hub", "server", nc.ConnectedServerName())
	return nc, nil
}

// credentials turns the binding's creds (a NATS credentials file: user JWT
// and seed) into a connect option, or nil on a hub without auth. With a
// creds file, it is read again at every connect so a renewed JWT is used.
func credentials(b binding.Binding, o *options) (nats.Option, error) {
	read := func() ([]byte, error) { return b.Creds, nil }
	if o.credsFile != "" {
		read = func() ([]byte, error) { return os.ReadFile(o.credsFile) }
	} else if len(b.Creds) == 0 {
		return nil, nil
	}
	// Parse once now, so a broken binding fails NewProducer/NewConsumer
	// rather than every connection attempt.
	data, err := read()
	if err != nil {
		return nil, fmt.Errorf("hubflow: reading credentials: %w", err)
	}
	if _, _, err := parseCreds(data); err != nil {
		return nil, err
	}
	userJWT := func() (string, error) {
		data, err := read()
		if err != nil {
			return "", err
		}
		jwt, _, err := parseCreds(data)
		return jwt, err
	}
	sign := func(nonce []byte) ([]byte, error) {
		data, err := read()
		if err != nil {
			return nil, err
		}
		_, kp, err := parseCreds(data)
		if err != nil {
			return nil, err
		}
		defer kp.Wipe()
		return kp.Sign(nonce)
	}
	return nats.UserJWT(userJWT, sign), nil
}

func parseCreds(data []byte) (string, nkeys.KeyPair, error) {
	jwt, err := nkeys.ParseDecoratedJWT(data)
	if err != nil || jwt == "" || jwt == string(data) {
		return "", nil, fmt.Errorf("hubflow: %s holds no user JWT (want a NATS credentials file)", binding.KeyCreds)
	}
	kp, err := nkeys.ParseDecoratedUserNKey(data)
	if err != nil {
		return "", nil, fmt.Errorf("hubflow: %s holds no user seed: %w", binding.KeyCreds, err)
	}
	return jwt, kp, nil
}

// redactURLs drops user information from a comma-separated URL list, so an
// error never prints a password or token.
func redactURLs(list string) string {
	parts := strings.Split(list, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil && u.User != nil {
			u.User = url.User("redacted")
			parts[i] = u.String()
		}
	}
	return strings.Join(parts, ",")
}

// reconnectBuffer turns nats.go's reconnect buffer off for a producer that
// waits for acknowledgements: a publish made while the connection is down
// fails at once and is retried on the live connection within the retry
// horizon. With the buffer, every retry made during an outage would be sent
// at reconnect, however late, and an ExactlyOnce message stored once before
// the outage would be stored again once its duplicate window had passed.
func reconnectBuffer(b binding.Binding) nats.Option {
	if b.Role == binding.RoleProducer && b.WaitForAck {
		return nats.ReconnectBufSize(-1)
	}
	return func(*nats.Options) error { return nil }
}
