package binding

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestRoundTripThroughAMountedDirectory(t *testing.T) {
	for _, b := range []Binding{
		{Role: RoleProducer, URL: "nats://hub:4222", Creds: []byte("-----BEGIN NATS USER JWT-----"), Stream: "shop_payments",
			Subjects: []string{"shop.payments", "shop.payments.>"}, Semantic: "ExactlyOnce", Inbox: "_INBOX_checkout",
			WaitForAck: true, MessageID: true, AckTimeout: 5 * time.Second, Retries: 5, RetryWait: 500 * time.Millisecond,
			DuplicateWindow: 2 * time.Minute},
		{Role: RoleConsumer, URL: "nats://hub:4222", Stream: "shop_payments", Durable: "ledger", Semantic: "AtLeastOnce",
			Inbox: "_INBOX_ledger", Ack: AckExplicit, AckWait: 30 * time.Second,
			RedeliveryDelays: []time.Duration{30 * time.Second, time.Minute}, MaxDeliver: 0},
		{Role: RoleConsumer, URL: "nats://hub:4222", Stream: "shop_payments", Durable: "ledger", Semantic: "ExactlyOnce",
			Inbox: "_INBOX_ledger", Ack: AckDoubleAck, AckWait: 30 * time.Second, IdempotencyKey: true,
			RedeliveryDelays: []time.Duration{30 * time.Second}, MaxAge: 72 * time.Hour},
	} {
		dir := t.TempDir()
		if err := b.Write(dir); err != nil {
			t.Fatal(err)
		}
		// What a Secret volume mount adds next to the keys.
		if err := os.Mkdir(filepath.Join(dir, "..2026_11_25"), 0o700); err != nil {
			t.Fatal(err)
		}
		got, err := Read(dir)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, b) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, b)
		}
	}
}

func TestDecodeNamesEveryProblem(t *testing.T) {
	_, err := Decode(map[string][]byte{
		KeyType: []byte("nats"), KeyRole: []byte("consumer"), KeyAckWait: []byte("soon"),
	})
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{"url is missing", "stream is missing", "durable is missing", "ack-wait"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if _, err := Decode(map[string][]byte{KeyType: []byte("kafka")}); err == nil || !strings.Contains(err.Error(), "nats") {
		t.Errorf("a binding of another type must be refused, got %v", err)
	}
}
