// Package credentials_test drives hubflow's least-privilege credentials end
// to end: a real kube-apiserver (envtest), an in-process nats-server in
// operator (JWT) mode with the full NATS account resolver, and the manager
// holding an account signing key. Workloads are played by plain nats.go
// clients that read their binding from a directory kept in sync with the
// binding Secret, as the kubelet keeps a Secret volume in sync.
package credentials_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zapcore"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/hubflow/hubflow/controllers"
	"github.com/hubflow/hubflow/internal/credentials"
	"github.com/hubflow/hubflow/internal/natsconn"
	"github.com/hubflow/hubflow/internal/testenv"
	"github.com/hubflow/hubflow/internal/testhub"
	"github.com/hubflow/hubflow/internal/testkube"
	"github.com/hubflow/hubflow/internal/testnats"
)

// ttl is the manager's credentials TTL here: short, so that renewal,
// expiry and the end of a deleted object's access all happen within a
// test. Renewal comes at two thirds of it, so credentials read from a
// binding always have a third of it (about 7s) left.
const ttl = 20 * time.Second

var (
	k8s        client.Client
	hubServer  *testnats.Server
	trust      *testnats.Trust
	admin      jetstream.JetStream // the test's own, unrestricted view of the hub
	bindingURL string
	ctx        = context.Background()

	// managerLog is everything the manager logged, at every verbosity.
	managerLog testkube.SyncBuffer
	// secrets are every secret value the test saw: the signing key, the
	// manager's credentials, and each credentials file a binding held.
	secrets secretSet
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var logOut io.Writer = &managerLog
	if os.Getenv("HUBFLOW_TEST_LOG") != "" {
		logOut = io.MultiWriter(&managerLog, os.Stderr)
	}
	ctrl.SetLogger(zap.New(zap.WriteTo(logOut), zap.Level(zapcore.Level(-10))))

	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	env, err := testenv.Start()
	if err != nil {
		return fail(err)
	}
	defer env.Stop()
	k8s = env.Client

	dir, err := os.MkdirTemp("", "hubflow-credentials-")
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(dir)
	if trust, err = testnats.NewTrust(); err != nil {
		return fail(err)
	}
	if hubServer, err = testnats.StartOperatorMode(filepath.Join(dir, "hub"), trust); err != nil {
		return fail(err)
	}
	defer hubServer.Stop()

	// The test's own user may do anything in the account.
	adminCreds, err := trust.UserCreds("test-admin", nil, nil)
	if err != nil {
		return fail(err)
	}
	secrets.addCreds(adminCreds)
	adminConn, err := nats.Connect(hubServer.URL(), nats.UserJWTAndSeed(jwtAndSeed(adminCreds)))
	if err != nil {
		return fail(err)
	}
	defer adminConn.Close()
	admin, _ = jetstream.New(adminConn)

	// The manager's own user: the JetStream API, its replies and the
	// advisories, nothing else (docs/credentials.md recommends the same).
	managerCreds, err := trust.UserCreds("hubflow-manager",
		[]string{"$JS.API.>"}, []string{"_INBOX.>", "$JS.EVENT.ADVISORY.>"})
	if err != nil {
		return fail(err)
	}
	secrets.addCreds(managerCreds)
	credsFile := filepath.Join(dir, "manager.creds")
	keyFile := filepath.Join(dir, "signing.nk")
	seed := trust.SigningSeed()
	secrets.add(string(seed))
	if err := os.WriteFile(credsFile, managerCreds, 0o600); err != nil {
		return fail(err)
	}
	if err := os.WriteFile(keyFile, seed, 0o600); err != nil {
		return fail(err)
	}
	// As cmd/manager does with --nats-account-signing-key-file.
	issuer, err := credentials.LoadIssuer(keyFile, trust.AccountKey, ttl)
	if err != nil {
		return fail(err)
	}

	// Workloads dial another spelling of the same server, so a binding
	// provably carries --binding-nats-url and not the manager's URL.
	bindingURL = strings.Replace(hubServer.URL(), "127.0.0.1", "localhost", 1)
	mgr, err := testhub.StartWith(env.Config, env.Scheme,
		natsconn.Options{URL: hubServer.URL(), CredsFile: credsFile},
		controllers.Options{
			ResyncInterval: time.Hour, ObserveInterval: time.Second, MaxConcurrentReconciles: 2,
			Credentials: issuer, BindingURL: bindingURL,
		})
	if err != nil {
		return fail(err)
	}
	defer mgr.Stop()
	return m.Run()
}

func namespace(t *testing.T) string { t.Helper(); return testkube.Namespace(t, k8s) }

func eventually(t *testing.T, timeout time.Duration, check func() error) {
	t.Helper()
	testkube.Eventually(t, timeout, check)
}

const wait = 30 * time.Second
