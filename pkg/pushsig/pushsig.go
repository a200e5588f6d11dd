// Package pushsig signs and verifies the requests hubflow's gateway pushes
// to a Consumer's endpoint (spec.push.signing), so an endpoint can tell a
// delivery from the gateway apart from a forged one and refuse an old one
// replayed at it.
//
// The signature is an HMAC-SHA256, keyed with a secret the Consumer's
// owner and the endpoint share, over "<unix seconds>.<idempotency key>.<body>".
// It travels in one header:
//
//	Hubflow-Signature: t=1765112400,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd
//
// The timestamp bounds a replay; the idempotency key ties the body to the
// message it belongs to, so a body cannot be replayed under another key.
// Only the standard library is used: an endpoint in Go imports this
// package; one in another language follows docs/protocol.md.
package pushsig

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Header is the request header the signature travels in.
const Header = "Hubflow-Signature"

// DefaultTolerance is how far a signature's time may be from the
// endpoint's clock before Verify refuses it.
const DefaultTolerance = 5 * time.Minute

// version names the scheme, so a later one can be sent next to it.
const version = "v1"

// Sign returns the header value for a request with the given idempotency
// key and body, sent at t.
func Sign(secret []byte, t time.Time, key string, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + "," + version + "=" + hex.EncodeToString(mac(secret, ts, key, body))
}

// Errors Verify returns, to tell a forged request from a stale one.
var (
	ErrMalformed = errors.New("malformed " + Header + " header")
	ErrMismatch  = errors.New("signature does not match")
	ErrStale     = errors.New("signature is too old or from the future")
)

// Verify checks header, the value of the Hubflow-Signature header, against
// the request's idempotency key and body, with any of secrets (pass the old
// and the new one while a secret is being rotated). A signature whose time
// is more than tolerance away from now is refused; tolerance <= 0 means
// DefaultTolerance.
func Verify(header, key string, body []byte, now time.Time, tolerance time.Duration, secrets ...[]byte) error {
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	ts, sigs, err := parse(header)
	if err != nil {
		return err
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: t=%q is not a number", ErrMalformed, ts)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: signed %s away from now, tolerance %s", ErrStale, d.Round(time.Second), tolerance)
	}
	for _, secret := range secrets {
		want := mac(secret, ts, key, body)
		for _, sig := range sigs {
			if hmac.Equal(sig, want) {
				return nil
			}
		}
	}
	return ErrMismatch
}

// parse splits "t=<ts>,v1=<hex>[,v1=<hex>...]" into its time and the v1
// signatures; entries of other versions are skipped.
func parse(header string) (string, [][]byte, error) {
	var ts string
	var sigs [][]byte
	for part := range strings.SplitSeq(header, ",") {
		name, value, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return "", nil, fmt.Errorf("%w: %q has no '='", ErrMalformed, part)
		}
		switch name {
		case "t":
			ts = value
		case version:
			sig, err := hex.DecodeString(value)
			if err != nil {
				return "", nil, fmt.Errorf("%w: %s is not hex", ErrMalformed, version)
			}
			sigs = append(sigs, sig)
		}
	}
	if ts == "" || len(sigs) == 0 {
		return "", nil, fmt.Errorf("%w: want t=<unix seconds>,%s=<hex HMAC-SHA256>", ErrMalformed, version)
	}
	return ts, sigs, nil
}

func mac(secret []byte, ts, key string, body []byte) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(ts))
	h.Write([]byte{'.'})
	h.Write([]byte(key))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}
