package natsconn

import (
	"context"
	"fmt"
	"net/http"

	"github.com/go-logr/logr"
	"github.com/nats-io/nats.go"
)

// Connect opens the connection described by o. The logger comes from ctx (logr.FromContext).
//
// Connect does not wait for a server: when none is reachable it returns a connection in
// the reconnecting state that keeps trying forever, and the handlers log each change.
// Call Validate first; Connect fails only on settings the client itself rejects
// (for example an unreadable TLS or credentials file). extra options come
// last, so they win (a tenant account's user, for one).
func (o *Options) Connect(ctx context.Context, extra ...nats.Option) (*nats.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	log := logr.FromContextOrDiscard(ctx).WithName("nats")
	nc, err := nats.Connect(o.URL, append(o.natsOptions(log), extra...)...)
	if err != nil {
		return nil, fmt.Errorf("connecting to NATS at %s: %w", RedactURL(o.URL), err)
	}
	if !nc.IsConnected() {
		log.Info("NATS server not reachable yet, retrying in the background", "url", RedactURL(o.URL))
	}
	return nc, nil
}

func (o *Options) natsOptions(log logr.Logger) []nats.Option {
	wait := o.ReconnectWait
	if wait == 0 {
		wait = DefaultReconnectWait
	}
	opts := []nats.Option{
		nats.Name(o.Name),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.ReconnectWait(wait),
		// URLs go through RedactURL: nats.Conn.ConnectedUrlRedacted masks a password but
		// still shows the user name, and a bare token sits in the user name position.
		nats.ConnectHandler(func(nc *nats.Conn) {
			log.Info("connected to NATS", "url", RedactURL(nc.ConnectedUrl()), "server", nc.ConnectedServerName())
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("reconnected to NATS", "url", RedactURL(nc.ConnectedUrl()), "server", nc.ConnectedServerName())
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Error(err, "disconnected from NATS, reconnecting")
				return
			}
			log.Info("disconnected from NATS")
		}),
		// One line per failed attempt would flood the log while the hub is down: verbose only.
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) {
			log.V(1).Info("NATS connection attempt failed", "error", err.Error())
		}),
		nats.ClosedHandler(func(_ *nats.Conn) {
			log.Info("NATS connection closed")
		}),
		// Asynchronous errors carry what the server refused, such as a permission violation
		// on a subject; a denied publish otherwise only shows up as a timeout.
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			if sub != nil {
				log.Error(err, "NATS asynchronous error", "subject", sub.Subject)
				return
			}
			log.Error(err, "NATS asynchronous error")
		}),
	}
	if o.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(o.CredsFile))
	}
	if o.TLSCAFile != "" {
		opts = append(opts, nats.RootCAs(o.TLSCAFile))
	}
	if o.TLSCertFile != "" {
		opts = append(opts, nats.ClientCert(o.TLSCertFile, o.TLSKeyFile))
	}
	return opts
}

// ReadyCheck is a readiness check (a healthz.Checker) that fails while nc is not connected,
// naming the connection state, so a manager cut off from the hub is reported as not ready.
func ReadyCheck(nc *nats.Conn) func(*http.Request) error {
	return func(*http.Request) error {
		if nc.IsConnected() {
			return nil
		}
		return fmt.Errorf("NATS connection is %s", nc.Status())
	}
}
