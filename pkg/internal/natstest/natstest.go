// Package natstest runs a real nats-server for the client library's tests.
//
// The server runs as its own process, not in-process: the client is its own
// Go module so that an application importing it inherits only the NATS
// client's dependencies, and linking nats-server into its tests would put
// nats-server into every such application's module graph. The binary is the
// one `make nats-server` builds from the version the operator's go.mod pins,
// so the client is tested against the server the operator is.
package natstest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Trust puts a server in operator (JWT) mode with a memory resolver.
type Trust struct {
	OperatorJWT   string
	SystemAccount string
	// Accounts maps each account's public key to its JWT.
	Accounts map[string]string
}

// Server is one JetStream-enabled nats-server process on 127.0.0.1.
type Server struct {
	bin, dir, conf, logPath string
	port                    int

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Start runs a JetStream server with its store in a new temporary directory,
// on a free port kept across Restart, in operator mode when trust is set. It
// stops when the test ends; a failed test gets the server's log.
func Start(t testing.TB, trust *Trust) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Fatal(err)
	}
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s := &Server{bin: bin, dir: dir, port: port, conf: filepath.Join(dir, "server.conf"), logPath: filepath.Join(dir, "server.log")}
	if err := os.WriteFile(s.conf, []byte(config(port, filepath.Join(dir, "jetstream"), trust)), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			s.dumpLog(t)
		}
	})
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
	return s
}

// Binary finds the nats-server to run: $HUBFLOW_NATS_SERVER, then the
// repository's bin/nats-server above the working directory, then $PATH.
func Binary() (string, error) {
	if p := os.Getenv("HUBFLOW_NATS_SERVER"); p != "" {
		return p, nil
	}
	if dir, err := os.Getwd(); err == nil {
		for ; ; dir = filepath.Dir(dir) {
			p := filepath.Join(dir, "bin", "nats-server")
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
			if filepath.Dir(dir) == dir {
				break
			}
		}
	}
	if p, err := exec.LookPath("nats-server"); err == nil {
		return p, nil
	}
	return "", errors.New("no nats-server binary: run `make nats-server` at the repository root " +
		"(it builds bin/nats-server from the version go.mod pins) or set HUBFLOW_NATS_SERVER")
}

func config(port int, store string, trust *Trust) string {
	var b strings.Builder
	fmt.Fprintf(&b, "listen: 127.0.0.1:%d\nserver_name: hub-%d\njetstream { store_dir: %q }\n", port, port, store)
	if trust != nil {
		fmt.Fprintf(&b, "operator: %s\nsystem_account: %s\nresolver: MEMORY\nresolver_preload: {\n", trust.OperatorJWT, trust.SystemAccount)
		keys := make([]string, 0, len(trust.Accounts))
		for k := range trust.Accounts {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, "  %s: %s\n", k, trust.Accounts[k])
		}
		b.WriteString("}\n")
	}
	return b.String()
}

func (s *Server) start() error {
	log, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(s.bin, "-c", s.conf)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		log.Close()
		close(done)
	}()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return fmt.Errorf("nats-server exited at start (%s); its log:\n%s", cmd.ProcessState, s.logTail())
		default:
		}
		if c, err := net.DialTimeout("tcp", s.addr(), time.Second); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.Stop()
	return fmt.Errorf("nats-server did not listen on %s in 20s; its log:\n%s", s.addr(), s.logTail())
}

func (s *Server) addr() string { return fmt.Sprintf("127.0.0.1:%d", s.port) }

// URL is the client URL.
func (s *Server) URL() string { return "nats://" + s.addr() }

// Stop shuts the server down the way an operator would (SIGTERM, then
// SIGKILL after 10s); its store stays for Restart.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

// Restart starts the server again on the same port and store.
func (s *Server) Restart() error {
	s.Stop()
	return s.start()
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(s.logPath)
	const max = 4000
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(bytes.TrimSpace(b))
}

func (s *Server) dumpLog(t testing.TB) {
	t.Logf("nats-server log (%s), last lines:\n%s", s.logPath, s.logTail())
}

// freePort asks the kernel for a free loopback port. It is released before
// the server binds it; the server fails loudly if another process took it.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Connect is a test's own client of s, the test's view of the hub beside
// the client under test: it reconnects for as long as the test runs and is
// closed when the test ends.
func (s *Server) Connect(t testing.TB) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(s.URL(), nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}
