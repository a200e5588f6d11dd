package hubflow

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/hubflow/hubflow/pkg/binding"
	"github.com/hubflow/hubflow/pkg/internal/natstest"
)

// authHub is a server in operator (JWT) mode with one application account;
// user mints credentials in it with exactly the given permissions.
type authHub struct {
	srv     *natstest.Server
	account nkeys.KeyPair
}

func startAuthHub(t *testing.T) *authHub {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	op, err := nkeys.CreateOperator()
	must(err)
	sys, err := nkeys.CreateAccount()
	must(err)
	app, err := nkeys.CreateAccount()
	must(err)
	opPub, _ := op.PublicKey()
	sysPub, _ := sys.PublicKey()
	appPub, _ := app.PublicKey()
	oc := jwt.NewOperatorClaims(opPub)
	oc.SystemAccount = sysPub
	opJWT, err := oc.Encode(op)
	must(err)
	sysJWT, err := jwt.NewAccountClaims(sysPub).Encode(op)
	must(err)
	appClaims := jwt.NewAccountClaims(appPub)
	appClaims.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
	appJWT, err := appClaims.Encode(op)
	must(err)
	srv := natstest.Start(t, &natstest.Trust{OperatorJWT: opJWT, SystemAccount: sysPub,
		Accounts: map[string]string{sysPub: sysJWT, appPub: appJWT}})
	return &authHub{srv: srv, account: app}
}

// creds is a NATS credentials file for a new user allowed exactly pub and sub.
func (h *authHub) creds(t *testing.T, pub, sub []string) []byte {
	t.Helper()
	user, _ := nkeys.CreateUser()
	userPub, _ := user.PublicKey()
	uc := jwt.NewUserClaims(userPub)
	uc.Pub.Allow, uc.Sub.Allow = pub, sub
	userJWT, err := uc.Encode(h.account)
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := user.Seed()
	creds, err := jwt.FormatUserConfig(userJWT, seed)
	if err != nil {
		t.Fatal(err)
	}
	return creds
}

// The library works with the least-privilege credentials docs/credentials.md lists:
// the producer has no $JS.API permission at all, the consumer only INFO and
// MSG.NEXT on its durable and ACK on it, and both read their binding from a
// mounted directory whose creds file is re-read at every connect.
func TestLeastPrivilegeCredentials(t *testing.T) {
	h := startAuthHub(t)
	ctx := ctxT(t)
	admin, err := nats.Connect(h.srv.URL(), credsOption(t, h.creds(t, []string{">"}, []string{">"})))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	js, _ := jetstream.New(admin)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "PAY", Subjects: []string{"pay.>"}, Duplicates: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateConsumer(ctx, "PAY", jetstream.ConsumerConfig{Durable: "ledger", AckPolicy: jetstream.AckExplicitPolicy, AckWait: 5 * time.Second}); err != nil {
		t.Fatal(err)
	}

	pb := producerBinding(h.srv.URL(), "PAY", "ExactlyOnce", "pay.orders")
	pb.Inbox = "_INBOX_checkout"
	pb.Creds = h.creds(t, []string{"pay.orders"}, []string{"_INBOX_checkout.>"})
	cb := consumerBinding(h.srv.URL(), "PAY", "ledger", "ExactlyOnce", 5*time.Second)
	cb.Inbox = "_INBOX_ledger"
	cb.Creds = h.creds(t,
		[]string{"$JS.API.CONSUMER.INFO.PAY.ledger", "$JS.API.CONSUMER.MSG.NEXT.PAY.ledger", "$JS.ACK.PAY.ledger.>"},
		[]string{"_INBOX_ledger.>"})
	// The hub enforces auth: the same binding without credentials is refused.
	anonymous := pb
	anonymous.Creds = nil
	shortCtx, cancelShort := context.WithTimeout(ctx, 3*time.Second)
	defer cancelShort()
	if p, err := NewProducer(shortCtx, anonymous, quiet()); err == nil {
		p.Close(ctx)
		t.Fatal("connected without credentials")
	}

	root := t.TempDir()
	mount(t, filepath.Join(root, "checkout"), pb)
	mount(t, filepath.Join(root, "ledger"), cb)
	t.Setenv("SERVICE_BINDING_ROOT", root)

	p, err := ProducerFromEnv(ctx, "checkout", quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	const n = 20
	for i := range n {
		if _, err := p.Publish(ctx, Msg{Data: []byte{byte(i)}}); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	c, err := ConsumerFromEnv(ctx, "ledger", quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- c.Run(runCtx, func(context.Context, *Delivery) error { return nil }) }()
	waitFor(t, "every message acknowledged", func() bool { return c.Stats().Acked == n })
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.AckFailures != 0 {
		t.Errorf("consumer stats %+v: acknowledgements failed", st)
	}
}

func credsOption(t *testing.T, creds []byte) nats.Option {
	t.Helper()
	path := filepath.Join(t.TempDir(), "admin.creds")
	if err := os.WriteFile(path, creds, 0o600); err != nil {
		t.Fatal(err)
	}
	return nats.UserCredentials(path)
}

// mount writes a binding as a Secret volume would: one file per key.
func mount(t *testing.T, dir string, b binding.Binding) {
	t.Helper()
	if err := b.Write(dir); err != nil {
		t.Fatal(err)
	}
}
