package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/internal/semantic"
	"github.com/hubflow/hubflow/internal/tenancy"
	"github.com/hubflow/hubflow/internal/testenv"
	"github.com/hubflow/hubflow/internal/testkube"
	"github.com/hubflow/hubflow/internal/testnats"
)

// TestManagerWaitsForNATS runs the manager against envtest with no NATS server:
// it must start anyway, report live but not ready, and become ready once a server
// appears on its URL.
func TestManagerWaitsForNATS(t *testing.T) {
	ctrl.SetLogger(zap.New(zap.UseDevMode(true), zap.WriteTo(os.Stderr)))
	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stopping envtest: %v", err)
		}
	})

	natsPort, probePort := freePort(t), freePort(t)
	s, err := parseFlags([]string{
		"--metrics-bind-address=0",
		"--health-probe-bind-address=127.0.0.1:" + strconv.Itoa(probePort),
		"--nats-url=nats://127.0.0.1:" + strconv.Itoa(natsPort),
		"--nats-reconnect-wait=50ms",
	})
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx, env.Config, s) }()

	probe := "http://127.0.0.1:" + strconv.Itoa(probePort)
	waitForStatus(t, done, probe+"/healthz", http.StatusOK)
	if code := get(t, probe+"/readyz"); code == http.StatusOK {
		t.Fatalf("/readyz = %d with no NATS server, want a failure", code)
	}

	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: natsPort, JetStream: true, StoreDir: t.TempDir(), NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	t.Cleanup(ns.Shutdown)
	if !ns.ReadyForConnections(5 * time.Second) {
		t.Fatal("NATS server not ready")
	}
	waitForStatus(t, done, probe+"/readyz", http.StatusOK)

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run() = %v after cancel, want nil", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("manager did not stop after its context was canceled")
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// get returns the status code of GET url, or 0 when nothing answers.
func get(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// waitForStatus polls url until it answers want; it fails early if the manager exits.
// The deadline only bounds a failing test.
func waitForStatus(t *testing.T, done <-chan error, url string, want int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-done:
			t.Fatalf("manager exited early: run() = %v", err)
		default:
		}
		code := get(t, url)
		if code == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s = %d, want %d", url, code, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestManagerRunsWithTenancy runs the binary's own set-up with
// --tenancy=namespace against an operator-mode hub: from the three files a
// platform team mounts, a Topic's stream appears in its namespace's account.
func TestManagerRunsWithTenancy(t *testing.T) {
	ctrl.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	hub := testnats.StartTenancyHub(t)
	s, err := parseFlags([]string{
		"--metrics-bind-address=0", "--health-probe-bind-address=0",
		"--nats-url=" + hub.URL(), "--nats-creds=" + hub.SysCreds, "--nats-reconnect-wait=50ms",
		"--tenancy=namespace",
		"--nats-operator-signing-key-file=" + hub.OperatorKey,
		"--tenant-root-secret-file=" + hub.Root,
	})
	if err != nil {
		t.Fatal(err)
	}
	s.oneOfManyRuns = true
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, env.Config, s) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run() = %v after cancel, want nil", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("manager did not stop after its context was canceled")
		}
	})

	ns := testkube.Namespace(t, env.Client)
	if err := env.Client.Create(ctx, testkube.Topic(ns, "orders", hubflowv1.AtLeastOnce)); err != nil {
		t.Fatal(err)
	}
	authority, err := tenancy.LoadAuthority(hub.OperatorKey, hub.Root, tenancy.Unlimited)
	if err != nil {
		t.Fatal(err)
	}
	acc, err := authority.Account(ns)
	if err != nil {
		t.Fatal(err)
	}
	userJWT, seed, err := acc.ManagerUser("test")
	if err != nil {
		t.Fatal(err)
	}
	// The account exists once the manager pushed it: until then, the
	// server refuses its users.
	testkube.Eventually(t, 30*time.Second, func() error {
		nc, err := nats.Connect(hub.URL(), nats.UserJWTAndSeed(userJWT, seed))
		if err != nil {
			return err
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			return err
		}
		_, err = js.Stream(ctx, semantic.StreamName(ns, "orders"))
		return err
	})
}
