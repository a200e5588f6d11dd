package natstest

import (
	"io"
	"net"
	"strings"
	"sync"
	"testing"
)

// Link is a network path to a server that a test can cut: a TCP relay on a
// loopback port. Cut drops every connection open through it, as a network
// failure would, and keeps accepting new ones, so a client reconnects.
type Link struct {
	l        net.Listener
	upstream string

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// NewLink relays a new loopback port to url's host:port until the test ends.
func NewLink(t testing.TB, url string) *Link {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	k := &Link{l: l, upstream: strings.TrimPrefix(url, "nats://"), conns: map[net.Conn]struct{}{}}
	k.wg.Go(k.accept)
	t.Cleanup(func() {
		l.Close()
		k.Cut()
		k.wg.Wait()
	})
	return k
}

// URL is the server's address through the link.
func (k *Link) URL() string { return "nats://" + k.l.Addr().String() }

// Cut closes every connection open through the link and says how many
// client connections it cut.
func (k *Link) Cut() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	for c := range k.conns {
		c.Close()
	}
	n := len(k.conns) / 2 // each client connection is two: client side, server side
	clear(k.conns)
	return n
}

func (k *Link) accept() {
	for {
		down, err := k.l.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", k.upstream)
		if err != nil {
			down.Close()
			continue
		}
		k.mu.Lock()
		k.conns[down], k.conns[up] = struct{}{}, struct{}{}
		k.mu.Unlock()
		k.wg.Go(func() { k.relay(up, down) })
		k.wg.Go(func() { k.relay(down, up) })
	}
}

// relay copies one direction; when either side ends, both close.
func (k *Link) relay(dst, src net.Conn) {
	io.Copy(dst, src)
	dst.Close()
	src.Close()
	k.mu.Lock()
	delete(k.conns, dst)
	delete(k.conns, src)
	k.mu.Unlock()
}
