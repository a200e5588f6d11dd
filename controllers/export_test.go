package controllers

// The finalizer helpers are tested against a real API server with a
// concurrent writer, which the reconcilers cannot be made to race with on cue.
var (
	EnsureFinalizer = ensureFinalizer
	RemoveFinalizer = removeFinalizer
)
