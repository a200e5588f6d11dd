package controllers

import (
	"slices"
	"sync/atomic"
	"testing"

	"github.com/hubflow/hubflow/internal/hub"
)

// The finalizer helpers are tested against a real API server with a
// concurrent writer, which the reconcilers cannot be made to race with on cue.
var (
	EnsureFinalizer = ensureFinalizer
	RemoveFinalizer = removeFinalizer
)

// DropAdvisories makes the manager's advisory watch ignore every advisory
// of the given kinds until the test ends, as nats-server 2.15.2 sometimes
// drops STREAM.DELETED: a real server cannot be made to drop one on demand.
func DropAdvisories(t testing.TB, kinds ...hub.AdvisoryKind) {
	drop := func(a hub.Advisory) bool { return slices.Contains(kinds, a.Kind) }
	testHooks.drop.Store(&drop)
	t.Cleanup(func() { testHooks.drop.Store(nil) })
}

// HoldAdvisories stalls the advisory watch, as a loaded manager falls
// behind, until release is called or the test ends.
func HoldAdvisories(t testing.TB) (release func()) {
	held := make(chan struct{})
	testHooks.hold.Store(&held)
	var released bool
	release = func() {
		if !released {
			released = true
			testHooks.hold.Store(nil)
			close(held)
		}
	}
	t.Cleanup(release)
	return release
}

// PauseObserver stops the observer's looks until the test ends, so only
// the advisory watch can repair drift.
func PauseObserver(t testing.TB) {
	testHooks.observerPaused.Store(true)
	t.Cleanup(func() { testHooks.observerPaused.Store(false) })
}

// StopDeadLetterMover stops the dead-letter mover, as a manager that is
// down, until start is called or the test ends. The server's announcements
// go on being captured meanwhile.
func StopDeadLetterMover(t testing.TB) (start func()) {
	testHooks.moverStopped.Store(true)
	start = func() { testHooks.moverStopped.Store(false) }
	t.Cleanup(start)
	return start
}

// CrashDeadLetterMoves makes the next n moves end after the publish and
// before the announcement's acknowledgement, as a mover killed there: a
// real process cannot be killed between two statements on cue.
func CrashDeadLetterMoves(t testing.TB, n int) {
	var left atomic.Int64
	left.Store(int64(n))
	crash := func() bool { return left.Add(-1) >= 0 }
	testHooks.afterDeadLetterPublish.Store(&crash)
	t.Cleanup(func() { testHooks.afterDeadLetterPublish.Store(nil) })
}
