// Package testdiag makes a stuck test explain itself: a short goroutine dump
// of the project's own goroutines, and a watchdog that prints it (with
// what the test says it was doing) before go test's -timeout panics with a
// dump so long that CI keeps only its tail.
package testdiag

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// Goroutines is the goroutine dump cut down to the goroutines whose stack
// mentions one of keep (say "hubflow/hubflow/"), identical stacks printed
// once with their count, arguments and offsets dropped.
func Goroutines(keep ...string) string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	type group struct {
		header, stack string
		count         int
	}
	var groups []*group
	byStack := map[string]*group{}
	for _, g := range strings.Split(string(buf), "\n\n") {
		if !slices.ContainsFunc(keep, func(k string) bool { return strings.Contains(g, k) }) ||
			strings.Contains(g, "testdiag.Goroutines") {
			continue
		}
		lines := strings.Split(g, "\n")
		// "goroutine 42 [select, 2 minutes]:" → "[select, 2 minutes]"
		header := lines[0]
		if i := strings.Index(header, "["); i >= 0 {
			header = strings.TrimSuffix(header[i:], ":")
		}
		var frames []string
		for i := 1; i+1 < len(lines); i += 2 {
			frames = append(frames, fmt.Sprintf("        %s  %s", function(lines[i]), shortFile(lines[i+1])))
		}
		stack := strings.Join(frames, "\n")
		if gr, ok := byStack[stack]; ok {
			gr.count++
			continue
		}
		gr := &group{header: header, stack: stack, count: 1}
		byStack[stack] = gr
		groups = append(groups, gr)
	}
	slices.SortStableFunc(groups, func(a, b *group) int { return b.count - a.count })
	var b strings.Builder
	for _, g := range groups {
		fmt.Fprintf(&b, "    %d× %s\n%s\n", g.count, g.header, g.stack)
	}
	return b.String()
}

// function is a dump's function line without its arguments or the
// goroutine that created it.
func function(line string) string {
	if strings.HasPrefix(line, "created by ") {
		if j := strings.Index(line, " in goroutine "); j > 0 {
			return line[:j]
		}
		return line
	}
	if j := strings.LastIndex(line, "("); j > 0 && strings.HasSuffix(line, ")") {
		return line[:j]
	}
	return line
}

// shortFile cuts a dump's file line down to the path inside the module,
// the module cache or the standard library.
func shortFile(line string) string {
	file := strings.TrimSpace(line)
	if j := strings.LastIndex(file, " +0x"); j > 0 {
		file = file[:j]
	}
	if root := moduleRoot(); root != "" {
		if rest, ok := strings.CutPrefix(file, root); ok {
			return rest
		}
	}
	for _, marker := range []string{"/pkg/mod/", "/src/"} {
		if i := strings.LastIndex(file, marker); i >= 0 {
			return file[i+len(marker):]
		}
	}
	return file
}

// moduleRoot is the directory holding go.mod above the working directory.
func moduleRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir + "/"
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// watchdogMargin is how long before go test's -timeout the watchdog fires:
// time to print, and to exit before the timeout's own dump buries it.
const watchdogMargin = 45 * time.Second

// Watchdog fires shortly before the test binary's -timeout: it prints to
// standard error the test's name, what doing says it is doing and the
// project's goroutines, and exits the binary with status 1. It is for a
// test stuck in a call no context reaches; a test that ends in time never
// sees it. Without a -timeout it does nothing.
func Watchdog(t *testing.T, doing func() string) {
	d, ok := t.Deadline()
	if !ok {
		return
	}
	timer := time.AfterFunc(time.Until(d)-watchdogMargin, func() {
		fmt.Fprintf(os.Stderr, "\n%s is stuck %s before the test timeout; it was %s\ngoroutines of the project and of nats.go's JetStream:\n%s\n%s is stuck: %s\n",
			t.Name(), watchdogMargin, doing(), Goroutines("hubflow/hubflow/", "nats.go/jetstream."), t.Name(), doing())
		os.Exit(1)
	})
	t.Cleanup(func() { timer.Stop() })
}

// Within runs fn, a call no context reaches (a server's shutdown, a
// manager's stop), and returns an error naming what and holding the
// project's goroutines if it has not returned after d. fn goes on running
// in the background then: the error is for a test to fail with an
// explanation instead of hanging until go test's -timeout.
func Within(d time.Duration, what string, fn func()) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	select {
	case <-done:
		return nil
	case <-time.After(d):
		return fmt.Errorf("%s did not return in %s; goroutines of the project and of nats.go's JetStream:\n%s",
			what, d, Goroutines("hubflow/hubflow/", "nats.go/jetstream.", "nats-server/v2/server.(*Server).Shutdown"))
	}
}
