// Package binding is the contract between the hubflow operator and the
// workloads it serves: the keys of a Service Binding for Kubernetes
// (servicebinding.io) of type "nats" that the operator writes into a Secret
// per Producer and Consumer, and that an application reads from
// $SERVICE_BINDING_ROOT/<name> or from the Secret's data.
//
// Every key is a flat file, so the binding works with any Service Binding
// implementation and with a plain Secret volume mount.
package binding

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// SecretType is the Kubernetes Secret type of a hubflow binding.
const SecretType = "servicebinding.io/nats"

// Role says which side of a Topic a binding serves.
type Role string

const (
	RoleProducer Role = "producer"
	RoleConsumer Role = "consumer"
)

// Keys of a binding. Values are plain text; lists are one item per line.
const (
	KeyType     = "type"     // always "nats"
	KeyProvider = "provider" // always "hubflow"
	KeyRole     = "role"     // producer | consumer
	KeyURL      = "url"      // NATS URL, or a comma-separated list of URLs
	KeyCreds    = "creds"    // NATS credentials file (user JWT and seed); absent on a hub without auth
	KeyStream   = "stream"
	KeySubjects = "subjects" // producer: where it may publish; consumer: its filter (may be empty)
	KeyDurable  = "durable"  // consumer only
	KeySemantic = "semantic" // AtMostOnce | AtLeastOnce | ExactlyOnce
	KeyInbox    = "inbox-prefix"

	// Producer client policy.
	KeyWaitForAck      = "wait-for-ack"     // true: JetStream publish and wait for the PubAck
	KeyMessageID       = "message-id"       // true: stable Nats-Msg-Id per logical message, kept on retries
	KeyAckTimeout      = "ack-timeout"      // Go duration
	KeyRetries         = "retries"          // integer
	KeyRetryWait       = "retry-wait"       // Go duration
	KeyDuplicateWindow = "duplicate-window" // Go duration; the stream drops repeated ids inside it

	// Consumer client policy.
	KeyAck              = "ack"               // None | Ack | DoubleAck
	KeyAckWait          = "ack-wait"          // Go duration
	KeyRedeliveryDelays = "redelivery-delays" // Go durations, one per line; the last repeats
	KeyMaxDeliver       = "max-deliver"       // integer, 0 = unlimited
	KeyIdempotencyKey   = "idempotency-key"   // true: hand the handler a stable key
	KeyMaxAge           = "max-age"           // Go duration, the stream's retention.maxAge; absent: unlimited
)

// Ack modes of a consumer binding.
const (
	AckNone      = "None"
	AckExplicit  = "Ack"
	AckDoubleAck = "DoubleAck"
)

// Binding is a decoded binding. Fields of the other role are zero.
type Binding struct {
	Role     Role
	URL      string
	Creds    []byte
	Stream   string
	Subjects []string
	Durable  string
	Semantic string
	Inbox    string

	WaitForAck      bool
	MessageID       bool
	AckTimeout      time.Duration
	Retries         int
	RetryWait       time.Duration
	DuplicateWindow time.Duration

	Ack              string
	AckWait          time.Duration
	RedeliveryDelays []time.Duration
	MaxDeliver       int
	IdempotencyKey   bool
	// MaxAge is how long the stream keeps a message (0: no limit): no
	// message older than that can be delivered again, so a dedup record
	// may forget its key.
	MaxAge time.Duration
}

// Data encodes b as the data of a binding Secret.
func (b Binding) Data() map[string][]byte {
	d := map[string][]byte{
		KeyType: []byte("nats"), KeyProvider: []byte("hubflow"),
		KeyRole: []byte(b.Role), KeyURL: []byte(b.URL), KeyStream: []byte(b.Stream),
		KeySubjects: []byte(strings.Join(b.Subjects, "\n")), KeySemantic: []byte(b.Semantic),
		KeyInbox: []byte(b.Inbox),
	}
	if len(b.Creds) > 0 {
		d[KeyCreds] = b.Creds
	}
	switch b.Role {
	case RoleProducer:
		d[KeyWaitForAck] = []byte(strconv.FormatBool(b.WaitForAck))
		d[KeyMessageID] = []byte(strconv.FormatBool(b.MessageID))
		d[KeyAckTimeout] = []byte(b.AckTimeout.String())
		d[KeyRetries] = []byte(strconv.Itoa(b.Retries))
		d[KeyRetryWait] = []byte(b.RetryWait.String())
		d[KeyDuplicateWindow] = []byte(b.DuplicateWindow.String())
	case RoleConsumer:
		d[KeyDurable] = []byte(b.Durable)
		d[KeyAck] = []byte(b.Ack)
		d[KeyAckWait] = []byte(b.AckWait.String())
		delays := make([]string, len(b.RedeliveryDelays))
		for i, dl := range b.RedeliveryDelays {
			delays[i] = dl.String()
		}
		d[KeyRedeliveryDelays] = []byte(strings.Join(delays, "\n"))
		d[KeyMaxDeliver] = []byte(strconv.Itoa(b.MaxDeliver))
		d[KeyIdempotencyKey] = []byte(strconv.FormatBool(b.IdempotencyKey))
		if b.MaxAge > 0 {
			d[KeyMaxAge] = []byte(b.MaxAge.String())
		}
	}
	return d
}

// Write lays b out in dir as a Secret volume mount would, one file per
// key: for running a workload outside Kubernetes, and for tests.
func (b Binding) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for k, v := range b.Data() {
		if err := os.WriteFile(filepath.Join(dir, k), v, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// Read decodes the binding mounted in dir (one file per key).
func Read(dir string) (Binding, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return Binding{}, fmt.Errorf("reading binding %s: %w", dir, err)
	}
	data := map[string][]byte{}
	for _, e := range entries {
		// Kubernetes Secret volumes hold ..data and timestamped folders next
		// to the key links; only the keys are regular names.
		if e.IsDir() || strings.HasPrefix(e.Name(), "..") {
			continue
		}
		v, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return Binding{}, fmt.Errorf("reading binding %s: %w", dir, err)
		}
		data[e.Name()] = v
	}
	b, err := Decode(data)
	if err != nil {
		return Binding{}, fmt.Errorf("binding %s: %w", dir, err)
	}
	return b, nil
}

// FromEnv reads the binding named name under $SERVICE_BINDING_ROOT.
func FromEnv(name string) (Binding, error) {
	root := os.Getenv("SERVICE_BINDING_ROOT")
	if root == "" {
		return Binding{}, errors.New("SERVICE_BINDING_ROOT is not set")
	}
	return Read(filepath.Join(root, name))
}

// Decode reads a binding from a Secret's data, checking every key it needs.
func Decode(data map[string][]byte) (Binding, error) {
	d := decoder{data: data}
	if t := d.str(KeyType); t != "nats" {
		return Binding{}, fmt.Errorf("%s is %q, want \"nats\"", KeyType, t)
	}
	b := Binding{
		Role: Role(d.str(KeyRole)), URL: d.required(KeyURL), Creds: data[KeyCreds],
		Stream: d.required(KeyStream), Subjects: d.list(KeySubjects),
		Semantic: d.required(KeySemantic), Inbox: d.str(KeyInbox),
	}
	switch b.Role {
	case RoleProducer:
		b.WaitForAck, b.MessageID = d.boolean(KeyWaitForAck), d.boolean(KeyMessageID)
		b.AckTimeout, b.RetryWait = d.duration(KeyAckTimeout), d.duration(KeyRetryWait)
		b.Retries, b.DuplicateWindow = d.integer(KeyRetries), d.duration(KeyDuplicateWindow)
	case RoleConsumer:
		b.Durable, b.Ack = d.required(KeyDurable), d.required(KeyAck)
		b.AckWait, b.MaxDeliver = d.duration(KeyAckWait), d.integer(KeyMaxDeliver)
		b.IdempotencyKey = d.boolean(KeyIdempotencyKey)
		if _, ok := data[KeyMaxAge]; ok {
			b.MaxAge = d.duration(KeyMaxAge)
		}
		for _, s := range d.list(KeyRedeliveryDelays) {
			b.RedeliveryDelays = append(b.RedeliveryDelays, d.parseDuration(KeyRedeliveryDelays, s))
		}
	default:
		d.errs = append(d.errs, fmt.Errorf("%s is %q, want %q or %q", KeyRole, b.Role, RoleProducer, RoleConsumer))
	}
	return b, errors.Join(d.errs...)
}

// decoder collects every problem of a binding, not just the first.
type decoder struct {
	data map[string][]byte
	errs []error
}

func (d *decoder) str(key string) string { return strings.TrimSpace(string(d.data[key])) }

func (d *decoder) required(key string) string {
	v := d.str(key)
	if v == "" {
		d.errs = append(d.errs, fmt.Errorf("%s is missing", key))
	}
	return v
}

func (d *decoder) list(key string) []string {
	var out []string
	for _, line := range strings.Split(d.str(key), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			out = append(out, line)
		}
	}
	return out
}

func (d *decoder) boolean(key string) bool {
	v, err := strconv.ParseBool(d.required(key))
	if err != nil && d.str(key) != "" {
		d.errs = append(d.errs, fmt.Errorf("%s: %w", key, err))
	}
	return v
}

func (d *decoder) integer(key string) int {
	v, err := strconv.Atoi(d.required(key))
	if err != nil && d.str(key) != "" {
		d.errs = append(d.errs, fmt.Errorf("%s: %w", key, err))
	}
	return v
}

func (d *decoder) duration(key string) time.Duration {
	return d.parseDuration(key, d.required(key))
}

func (d *decoder) parseDuration(key, s string) time.Duration {
	if s == "" {
		return 0
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		d.errs = append(d.errs, fmt.Errorf("%s: %w", key, err))
	}
	return v
}
