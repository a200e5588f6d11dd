package credentials_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/hubflow/hubflow/pkg/binding"
)

// mount keeps a directory in sync with a binding Secret, one file per key,
// the way the kubelet keeps a Secret volume at $SERVICE_BINDING_ROOT/<name>:
// updates replace files atomically, and a deleted Secret leaves the last
// contents in place. It returns once the Secret holds credentials.
func mount(t *testing.T, namespace, secret string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), secret)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	refresh := func() error {
		var s corev1.Secret
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: namespace, Name: secret}, &s); err != nil {
			return err
		}
		if len(s.Data[binding.KeyCreds]) == 0 {
			return fmt.Errorf("Secret %s holds no credentials yet", secret)
		}
		secrets.addCreds(s.Data[binding.KeyCreds])
		for k, v := range s.Data {
			path := filepath.Join(dir, k)
			if old, err := os.ReadFile(path); err == nil && string(old) == string(v) {
				continue
			}
			if err := os.WriteFile(path+".tmp", v, 0o600); err != nil {
				return err
			}
			if err := os.Rename(path+".tmp", path); err != nil {
				return err
			}
		}
		return nil
	}
	eventually(t, wait, refresh)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				if err := refresh(); err != nil && !apierrors.IsNotFound(err) {
					t.Logf("syncing %s: %v", secret, err)
				}
			}
		}
	}()
	t.Cleanup(func() { close(done); wg.Wait() })
	return dir
}

// workload is a client that connects with a mounted binding, as an
// application would: the binding's URL, its credentials file (re-read at
// every reconnect, so renewed credentials are picked up), its inbox prefix.
type workload struct {
	t    *testing.T
	b    binding.Binding
	nc   *nats.Conn
	js   jetstream.JetStream
	errs chan error
}

func connect(t *testing.T, dir string) *workload {
	t.Helper()
	b, err := binding.Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	w := &workload{t: t, b: b, errs: make(chan error, 256)}
	w.nc, err = nats.Connect(b.URL,
		nats.UserCredentials(filepath.Join(dir, binding.KeyCreds)),
		nats.CustomInboxPrefix(b.Inbox),
		nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond),
		nats.PermissionErrOnSubscribe(true),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case w.errs <- err:
			default:
			}
		}))
	if err != nil {
		t.Fatalf("connecting with the binding in %s: %v", dir, err)
	}
	t.Cleanup(w.nc.Close)
	w.js, _ = jetstream.New(w.nc)
	return w
}

// publish publishes with acknowledgement, retrying as the binding's policy
// says a producer must, until the stream acknowledges.
func (w *workload) publish(subject, msgID string) *jetstream.PubAck {
	w.t.Helper()
	var ack *jetstream.PubAck
	eventually(w.t, wait, func() error {
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		var err error
		ack, err = w.js.Publish(c, subject, []byte("payload "+msgID), jetstream.WithMsgID(msgID))
		return err
	})
	return ack
}

// denied runs attempt and waits for the server to refuse it: a permission
// violation naming subject. The attempt itself must fail too.
func (w *workload) denied(what, subject string, attempt func(context.Context) error) {
	w.t.Helper()
	for len(w.errs) > 0 {
		<-w.errs
	}
	c, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- attempt(c) }()
	result, finished := done, false
	var attemptErr error
	violated := false
	for !violated {
		select {
		case err := <-w.errs:
			violated = errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), `"`+subject+`"`)
		case attemptErr = <-result:
			finished, result = true, nil
			if attemptErr == nil {
				w.t.Errorf("%s: succeeded, want it denied", what)
				return
			}
		case <-c.Done():
			w.t.Errorf("%s: no permission violation for %q", what, subject)
			return
		}
	}
	// The refused request is never answered: stop waiting for it.
	cancel()
	if !finished {
		attemptErr = <-done
	}
	if attemptErr == nil {
		w.t.Errorf("%s: succeeded, want it denied", what)
	}
}

// deniedSubscribe checks that subscribing to subject is refused.
func (w *workload) deniedSubscribe(what, subject string) {
	w.t.Helper()
	sub, err := w.nc.SubscribeSync(subject)
	if err != nil {
		w.t.Fatalf("%s: %v", what, err)
	}
	defer sub.Unsubscribe()
	_, err = sub.NextMsg(wait)
	if !errors.Is(err, nats.ErrPermissionViolation) || !strings.Contains(err.Error(), `"`+subject+`"`) {
		w.t.Errorf("%s: NextMsg = %v, want a permission violation for %q", what, err, subject)
	}
}

// userClaims decodes the user JWT of a mounted binding.
func userClaims(t *testing.T, dir string) *jwt.UserClaims {
	t.Helper()
	creds, err := os.ReadFile(filepath.Join(dir, binding.KeyCreds))
	if err != nil {
		t.Fatal(err)
	}
	token, err := jwt.ParseDecoratedJWT(creds)
	if err != nil {
		t.Fatal(err)
	}
	claims, err := jwt.DecodeUserClaims(token)
	if err != nil {
		t.Fatal(err)
	}
	return claims
}

func jwtAndSeed(creds []byte) (string, string) {
	token, _ := jwt.ParseDecoratedJWT(creds)
	kp, err := jwt.ParseDecoratedUserNKey(creds)
	if err != nil {
		return token, ""
	}
	seed, _ := kp.Seed()
	return token, string(seed)
}

// secretSet collects secret values to look for where they must not be.
type secretSet struct {
	mu     sync.Mutex
	values map[string]bool
}

func (s *secretSet) add(v string) {
	if v == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.values == nil {
		s.values = map[string]bool{}
	}
	s.values[v] = true
}

// addCreds records a credentials file's JWT, its signature alone (a
// truncated JWT would still leak it) and its seed.
func (s *secretSet) addCreds(creds []byte) {
	token, seed := jwtAndSeed(creds)
	s.add(token)
	if i := strings.LastIndex(token, "."); i >= 0 {
		s.add(token[i+1:])
	}
	s.add(seed)
}

func (s *secretSet) list() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.values))
	for v := range s.values {
		out = append(out, v)
	}
	return out
}
