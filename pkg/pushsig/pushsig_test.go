package pushsig_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/hubflow/hubflow/pkg/pushsig"
)

var (
	secret = []byte("s3cret")
	at     = time.Unix(1765112400, 0)
)

func TestSignatureIsTheDocumentedHMAC(t *testing.T) {
	// docs/protocol.md tells other languages to compute exactly this.
	h := hmac.New(sha256.New, secret)
	h.Write([]byte("1765112400.orders:7.{\"id\":1}"))
	want := "t=1765112400,v1=" + hex.EncodeToString(h.Sum(nil))
	if got := pushsig.Sign(secret, at, "orders:7", []byte(`{"id":1}`)); got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
}

func TestVerify(t *testing.T) {
	body := []byte(`{"id":1}`)
	sig := pushsig.Sign(secret, at, "orders:7", body)
	cases := []struct {
		name    string
		header  string
		key     string
		body    []byte
		now     time.Time
		secrets [][]byte
		want    error
	}{
		{"genuine", sig, "orders:7", body, at.Add(time.Minute), [][]byte{secret}, nil},
		{"rotating: the old secret still verifies", sig, "orders:7", body, at, [][]byte{[]byte("new"), secret}, nil},
		{"other secret", sig, "orders:7", body, at, [][]byte{[]byte("other")}, pushsig.ErrMismatch},
		{"body changed", sig, "orders:7", []byte(`{"id":2}`), at, [][]byte{secret}, pushsig.ErrMismatch},
		{"body replayed under another key", sig, "orders:8", body, at, [][]byte{secret}, pushsig.ErrMismatch},
		{"replayed later", sig, "orders:7", body, at.Add(6 * time.Minute), [][]byte{secret}, pushsig.ErrStale},
		{"from the future", sig, "orders:7", body, at.Add(-6 * time.Minute), [][]byte{secret}, pushsig.ErrStale},
		{"time swapped", "t=1765112401" + sig[len("t=1765112400"):], "orders:7", body, at, [][]byte{secret}, pushsig.ErrMismatch},
		{"no signature", "t=1765112400", "orders:7", body, at, [][]byte{secret}, pushsig.ErrMalformed},
		{"not hex", "t=1765112400,v1=zz", "orders:7", body, at, [][]byte{secret}, pushsig.ErrMalformed},
		{"empty", "", "orders:7", body, at, [][]byte{secret}, pushsig.ErrMalformed},
		{"a later version next to v1 is skipped", sig + ",v2=abc", "orders:7", body, at, [][]byte{secret}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := pushsig.Verify(c.header, c.key, c.body, c.now, 0, c.secrets...)
			if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
				t.Fatalf("Verify = %v, want %v", err, c.want)
			}
		})
	}
}
