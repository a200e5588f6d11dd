package natsconn

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// startServer runs an in-process JetStream server on 127.0.0.1:port (-1 picks a free port).
func startServer(t *testing.T, port int) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{
		Host:      "127.0.0.1",
		Port:      port,
		JetStream: true,
		StoreDir:  t.TempDir(),
		NoSigs:    true,
	})
	if err != nil {
		t.Fatalf("creating NATS server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(5 * time.Second) {
		s.Shutdown()
		t.Fatal("NATS server not ready")
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}

// freePort returns a port nobody listens on right now; the server that uses it starts later.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func connect(t *testing.T, o Options) *nats.Conn {
	t.Helper()
	nc, err := o.Connect(context.Background())
	if err != nil {
		t.Fatalf("Connect() error = %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// waitConnected polls the connection state; the deadline only bounds a failing test.
func waitConnected(t *testing.T, nc *nats.Conn) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !nc.IsConnected() {
		if time.Now().After(deadline) {
			t.Fatalf("connection still %v", nc.Status())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestConnect(t *testing.T) {
	s := startServer(t, -1)
	nc := connect(t, Options{URL: s.ClientURL(), Name: "natsconn-test"})
	if !nc.IsConnected() {
		t.Fatalf("connection is %v, want CONNECTED", nc.Status())
	}

	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := js.AccountInfo(ctx); err != nil {
		t.Fatalf("JetStream account info: %v", err)
	}
}

func TestConnectRecoversWhenServerStartsLater(t *testing.T) {
	port := freePort(t)
	nc := connect(t, Options{
		URL:           "nats://127.0.0.1:" + strconv.Itoa(port),
		ReconnectWait: 50 * time.Millisecond,
	})
	if nc.IsConnected() {
		t.Fatal("connected before any server was started")
	}
	if got := nc.Status(); got != nats.RECONNECTING {
		t.Fatalf("status with no server = %v, want RECONNECTING", got)
	}

	startServer(t, port)
	waitConnected(t, nc)
	if err := nc.FlushTimeout(5 * time.Second); err != nil {
		t.Fatalf("round trip after recovery: %v", err)
	}
}

func TestConnectRejectsCanceledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := (&Options{URL: DefaultURL}).Connect(ctx); err == nil {
		t.Fatal("Connect() with a canceled context succeeded")
	}
}
