package faults

import (
	"net"
	"sync"
	"testing"
)

// netProxy is the network between the clients and the hub: a TCP relay the
// test can break. A real nats-server cannot lose an acknowledgement after
// storing the message on its own (stopping it loses both), and an outage
// longer than a duplicate window is only meaningful if something was stored
// whose acknowledgement the client never saw, so the relay can drop what
// the hub sends while still carrying what the clients send (acks lost),
// and cut every connection and refuse new ones (the hub unreachable).
type netProxy struct {
	l        net.Listener
	upstream string

	mu    sync.Mutex
	mode  proxyMode
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

type proxyMode int

const (
	pass      proxyMode = iota // relay both ways
	deafen                     // relay to the hub, drop what it answers
	partition                  // cut every connection, refuse new ones
)

// startProxy relays a loopback port to upstream (host:port) until the test
// ends.
func startProxy(t *testing.T, upstream string) *netProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &netProxy{l: l, upstream: upstream, conns: map[net.Conn]struct{}{}}
	p.wg.Go(p.accept)
	t.Cleanup(func() {
		l.Close()
		p.set(partition)
		p.wg.Wait()
	})
	return p
}

// URL is the hub's address through the proxy.
func (p *netProxy) URL() string { return "nats://" + p.l.Addr().String() }

// set switches the network's behaviour; partition also cuts what is open.
func (p *netProxy) set(m proxyMode) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = m
	if m == partition {
		for c := range p.conns {
			c.Close()
		}
	}
}

func (p *netProxy) accept() {
	for {
		down, err := p.l.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		refused := p.mode == partition
		p.mu.Unlock()
		if refused {
			down.Close()
			continue
		}
		up, err := net.Dial("tcp", p.upstream)
		if err != nil {
			down.Close()
			continue
		}
		p.mu.Lock()
		if p.mode == partition {
			p.mu.Unlock()
			up.Close()
			down.Close()
			continue
		}
		p.conns[down], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Go(func() { p.relay(down, up, false) })
		p.wg.Go(func() { p.relay(up, down, true) })
	}
}

// relay copies from src to dst; fromHub says src is the hub's side, whose
// bytes deafen drops.
func (p *netProxy) relay(src, dst net.Conn, fromHub bool) {
	defer func() {
		src.Close()
		dst.Close()
		p.mu.Lock()
		delete(p.conns, src)
		delete(p.conns, dst)
		p.mu.Unlock()
	}()
	buf := make([]byte, 32*1024)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			drop := fromHub && p.mode == deafen
			p.mu.Unlock()
			if !drop {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
		}
		if err != nil {
			return // EOF or a cut: close both sides
		}
	}
}
