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
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/hubflow/hubflow/internal/testenv"
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
