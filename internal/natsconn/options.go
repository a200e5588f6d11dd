// Package natsconn opens the operator's single, long-lived connection to the NATS hub.
//
// The manager keeps one connection for its whole life: it retries the first connect
// and every reconnect forever, so a hub that is down or not yet deployed delays the
// operator's work instead of crashing it. Readiness reports the connection state.
package natsconn

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"
)

// DefaultURL is the hub the manager dials when --nats-url is not set: a development server on loopback.
const DefaultURL = "nats://127.0.0.1:4222"

// DefaultReconnectWait is the pause between two connection attempts.
const DefaultReconnectWait = 2 * time.Second

// Options says how to reach the hub and how to authenticate to it.
// The zero value of every optional field means "not used".
type Options struct {
	// URL is one server URL or a comma-separated list of them (nats://, tls://).
	URL string
	// Name is the connection name the server shows in its monitoring endpoints.
	Name string
	// CredsFile is a NATS credentials file (user JWT and seed). It is read at each
	// (re)connect, so a renewed file is picked up without a restart.
	CredsFile string
	// TLSCAFile is a PEM bundle of the CAs that sign the server's certificate.
	TLSCAFile string
	// TLSCertFile and TLSKeyFile are the client certificate and its key, for mutual TLS.
	TLSCertFile string
	TLSKeyFile  string
	// ReconnectWait is the pause between connection attempts; DefaultReconnectWait when zero.
	ReconnectWait time.Duration
}

// BindFlags registers the --nats-* flags on fs, writing into o.
func (o *Options) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.URL, "nats-url", DefaultURL, "NATS server URL, or a comma-separated list of URLs.")
	fs.StringVar(&o.Name, "nats-name", "hubflow-manager", "Connection name shown by the NATS server.")
	fs.StringVar(&o.CredsFile, "nats-creds", "", "Path to a NATS credentials file (user JWT and seed).")
	fs.StringVar(&o.TLSCAFile, "nats-tls-ca", "", "Path to a PEM file of CAs that sign the NATS server certificate.")
	fs.StringVar(&o.TLSCertFile, "nats-tls-cert", "", "Path to the client certificate for mutual TLS (needs --nats-tls-key).")
	fs.StringVar(&o.TLSKeyFile, "nats-tls-key", "", "Path to the client key for mutual TLS (needs --nats-tls-cert).")
	fs.DurationVar(&o.ReconnectWait, "nats-reconnect-wait", DefaultReconnectWait, "Pause between NATS connection attempts.")
}

// Validate reports every problem with o at once, so a misconfigured Deployment
// fails at start-up with the whole list rather than one error per restart.
func (o *Options) Validate() error {
	var errs []error
	if err := CheckURLs(o.URL); err != nil {
		errs = append(errs, fmt.Errorf("--nats-url: %w", err))
	}
	if (o.TLSCertFile == "") != (o.TLSKeyFile == "") {
		errs = append(errs, errors.New("--nats-tls-cert and --nats-tls-key: set both or neither"))
	}
	if o.ReconnectWait < 0 {
		errs = append(errs, fmt.Errorf("--nats-reconnect-wait: must not be negative, got %s", o.ReconnectWait))
	}
	for _, f := range []struct{ flag, path string }{
		{"--nats-creds", o.CredsFile},
		{"--nats-tls-ca", o.TLSCAFile},
		{"--nats-tls-cert", o.TLSCertFile},
		{"--nats-tls-key", o.TLSKeyFile},
	} {
		if err := checkFile(f.path); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f.flag, err))
		}
	}
	return errors.Join(errs...)
}

// CheckURLs checks a comma-separated list of NATS URLs, reporting every bad
// entry without echoing user information.
func CheckURLs(urls string) error {
	if strings.TrimSpace(urls) == "" {
		return errors.New("must not be empty")
	}
	var errs []error
	for _, raw := range strings.Split(urls, ",") {
		if err := checkURL(strings.TrimSpace(raw)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// HasUserInfo reports whether some URL of a comma-separated list embeds a
// user, a password or a token.
func HasUserInfo(urls string) bool {
	return strings.Contains(urls, "@")
}

// checkURL accepts what the NATS client accepts: a URL with a host, or a bare host:port.
// Errors never echo the URL itself, because it may carry a user, a password or a token.
func checkURL(raw string) error {
	if raw == "" {
		return errors.New("empty entry in the URL list")
	}
	if !strings.Contains(raw, "://") {
		return nil // host[:port]; the client adds nats://
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("unparsable URL %q", RedactURL(raw))
	}
	switch u.Scheme {
	case "nats", "tls", "ws", "wss":
	default:
		return fmt.Errorf("unsupported scheme %q in %q (want nats, tls, ws or wss)", u.Scheme, RedactURL(raw))
	}
	if u.Hostname() == "" {
		return fmt.Errorf("no host in %q", RedactURL(raw))
	}
	return nil
}

func checkFile(path string) error {
	if path == "" {
		return nil
	}
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	if info.IsDir() {
		return fmt.Errorf("%s is a directory, want a file", path)
	}
	return nil
}

// RedactURL replaces the user information of every URL in a comma-separated list,
// so a URL can be logged: NATS URLs may embed a user and password or a bare token.
func RedactURL(urls string) string {
	return replaceUserInfo(urls, "redacted@")
}

// WithoutUserInfo drops the user information of every URL in a
// comma-separated list: what is left can be handed to others.
func WithoutUserInfo(urls string) string {
	return replaceUserInfo(urls, "")
}

func replaceUserInfo(urls, with string) string {
	parts := strings.Split(urls, ",")
	for i, raw := range parts {
		raw = strings.TrimSpace(raw)
		at := strings.LastIndex(raw, "@")
		if at < 0 {
			parts[i] = raw
			continue
		}
		scheme := ""
		rest := raw
		if s := strings.Index(raw, "://"); s >= 0 && s < at {
			scheme, rest = raw[:s+3], raw[s+3:]
			at -= s + 3
		}
		parts[i] = scheme + with + rest[at+1:]
	}
	return strings.Join(parts, ",")
}
