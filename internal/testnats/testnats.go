// Package testnats runs real nats-servers in-process for tests, benchmarks
// and the local demo: a single JetStream server, or a three-node JetStream
// cluster on loopback, each restartable on the same ports and storage so a
// test can cut the hub off and bring it back; and a server in operator (JWT)
// mode with a made-up key hierarchy (operator.go).
package testnats

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hubflow/hubflow/internal/testdiag"
)

// Server is one JetStream-enabled nats-server.
type Server struct {
	opts *server.Options
	srv  *server.Server
	// resolver, when set, makes the account resolver of each start.
	resolver func() (server.AccountResolver, error)
}

// Start runs a JetStream server on 127.0.0.1 with its store in dir. port 0
// picks a free one, kept across Restart.
func Start(dir string, port int) (*Server, error) {
	if port == 0 {
		var err error
		if port, err = FreePort(); err != nil {
			return nil, err
		}
	}
	s := &Server{opts: &server.Options{
		ServerName: fmt.Sprintf("hub-%d", port),
		Host:       "127.0.0.1", Port: port,
		JetStream: true, StoreDir: dir,
		NoSigs: true, NoLog: true,
	}}
	return s, s.start()
}

func (s *Server) start() error {
	if s.resolver != nil {
		r, err := s.resolver()
		if err != nil {
			return fmt.Errorf("account resolver: %w", err)
		}
		s.opts.AccountResolver = r
		// The server derives its trusted keys from the operators into the
		// options it was given; a restart must start from the operators.
		s.opts.TrustedKeys = nil
	}
	srv, err := server.NewServer(s.opts)
	if err != nil {
		return fmt.Errorf("nats-server: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(20 * time.Second) {
		srv.Shutdown()
		return errors.New("nats-server did not become ready in 20s")
	}
	s.srv = srv
	return nil
}

// URL is the client URL.
func (s *Server) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", s.opts.Port) }

// Stop shuts the server down; its store stays for Restart.
func (s *Server) Stop() {
	if s.srv != nil {
		s.srv.Shutdown()
		s.srv.WaitForShutdown()
		s.srv = nil
	}
}

// Restart starts the server again on the same port and store.
func (s *Server) Restart() error {
	s.Stop()
	return s.start()
}

// Server returns the running server, for its statistics.
func (s *Server) Server() *server.Server { return s.srv }

var clusterSeq atomic.Int32

// Cluster is three JetStream servers clustered on loopback.
type Cluster struct {
	Nodes []*Server
}

// StartCluster runs a three-node JetStream cluster with stores under dir.
func StartCluster(dir string) (*Cluster, error) { return startCluster(dir, nil) }

// StartOperatorModeCluster is StartCluster with every node in t's operator
// mode, each with its own full resolver (StartOperatorMode): an account
// pushed to one reaches the others through the system account.
func StartOperatorModeCluster(dir string, t *Trust) (*Cluster, error) { return startCluster(dir, t) }

func startCluster(dir string, trust *Trust) (*Cluster, error) {
	const size = 3
	clientPorts, clusterPorts := make([]int, size), make([]int, size)
	for i := range size {
		var err error
		if clientPorts[i], err = FreePort(); err != nil {
			return nil, err
		}
		if clusterPorts[i], err = FreePort(); err != nil {
			return nil, err
		}
	}
	routes := make([]string, size)
	for i, p := range clusterPorts {
		routes[i] = fmt.Sprintf("nats-route://127.0.0.1:%d", p)
	}
	// Free ports are picked, then released, then bound: a cluster started by
	// another test process in between could take one. A name unique to this
	// process and cluster makes the servers refuse routes from any other.
	name := fmt.Sprintf("hub-%d-%d", os.Getpid(), clusterSeq.Add(1))
	c := &Cluster{}
	for i := range size {
		opts := &server.Options{
			ServerName: fmt.Sprintf("%s-%d", name, i),
			Host:       "127.0.0.1", Port: clientPorts[i],
			JetStream: true, StoreDir: filepath.Join(dir, fmt.Sprint(i)),
			NoSigs: true, NoLog: true,
			Cluster: server.ClusterOpts{Name: name, Host: "127.0.0.1", Port: clusterPorts[i]},
			Routes:  server.RoutesFromStr(strings.Join(routes, ",")),
		}
		n := &Server{opts: opts}
		if trust != nil {
			if err := trust.operatorMode(n, filepath.Join(dir, fmt.Sprint(i), "jwt")); err != nil {
				c.Stop()
				return nil, err
			}
			r, err := n.resolver()
			if err != nil {
				c.Stop()
				return nil, fmt.Errorf("nats-server %d: account resolver: %w", i, err)
			}
			opts.AccountResolver = r
		}
		srv, err := server.NewServer(opts)
		if err != nil {
			c.Stop()
			return nil, fmt.Errorf("nats-server %d: %w", i, err)
		}
		go srv.Start()
		n.srv = srv
		c.Nodes = append(c.Nodes, n)
	}
	for i, n := range c.Nodes {
		if !n.srv.ReadyForConnections(20 * time.Second) {
			c.Stop()
			return nil, fmt.Errorf("nats-server %d did not become ready", i)
		}
	}
	// JetStream is usable once the cluster has elected a meta leader.
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for _, n := range c.Nodes {
			if n.srv.JetStreamIsLeader() {
				return c, nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.Stop()
	return nil, errors.New("JetStream cluster elected no meta leader in 20s")
}

// URL lists every node, so a client fails over between them.
func (c *Cluster) URL() string {
	urls := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		urls[i] = n.URL()
	}
	return strings.Join(urls, ",")
}

// GlobalAccount is the account of every client of a server without auth.
const GlobalAccount = "$G"

// StreamLeader is the running node that leads stream in account, if one
// does now.
func (c *Cluster) StreamLeader(account, stream string) *Server {
	for _, n := range c.Nodes {
		if s := n.Server(); s != nil && s.JetStreamIsStreamLeader(account, stream) {
			return n
		}
	}
	return nil
}

// MetaLeader is the running node that leads the JetStream meta group, if
// one does now.
func (c *Cluster) MetaLeader() *Server {
	for _, n := range c.Nodes {
		if s := n.Server(); s != nil && s.JetStreamIsLeader() {
			return n
		}
	}
	return nil
}

// Stop shuts every node down.
func (c *Cluster) Stop() {
	for _, n := range c.Nodes {
		n.Stop()
	}
}

// FreePort asks the kernel for a free loopback port.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// APIRequests is the server's own count of JetStream API requests served,
// as its monitoring endpoint (/jsz) reports it.
func (s *Server) APIRequests() (uint64, error) {
	info, err := s.srv.Jsz(nil)
	if err != nil {
		return 0, err
	}
	return info.API.Total, nil
}

// Connect opens a plain client connection for a test's own view of the hub,
// closed when the test ends.
func Connect(tb testing.TB, url string) jetstream.JetStream {
	tb.Helper()
	return ConnectWith(tb, url)
}

// ConnectWith is Connect with more options, a user's credentials for one.
func ConnectWith(tb testing.TB, url string, opts ...nats.Option) jetstream.JetStream {
	tb.Helper()
	nc, err := nats.Connect(url, append([]nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(100 * time.Millisecond)}, opts...)...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatal(err)
	}
	return js
}

// StartTestCluster is StartCluster for a test: stores in the test's temp
// dir, up to three tries (free ports are picked, released and bound again,
// so a process beside this one can take one in between; each try picks new
// ones), and a stop at the test's end that fails the test, with what it was
// stuck in, if a node does not shut down in 90 s.
func StartTestCluster(t testing.TB) *Cluster {
	t.Helper()
	return startTestCluster(t, nil)
}

// StartTestOperatorModeCluster is StartTestCluster in trust's operator mode.
func StartTestOperatorModeCluster(t testing.TB, trust *Trust) *Cluster {
	t.Helper()
	return startTestCluster(t, trust)
}

func startTestCluster(t testing.TB, trust *Trust) *Cluster {
	t.Helper()
	var c *Cluster
	var err error
	for try := 1; try <= 3; try++ {
		if c, err = startCluster(t.TempDir(), trust); err == nil {
			break
		}
		t.Logf("starting the NATS cluster (try %d): %v", try, err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := testdiag.Within(90*time.Second, "stopping the NATS cluster", c.Stop); err != nil {
			t.Error(err)
		}
	})
	return c
}
