package faults

import (
	"errors"

	"github.com/hubflow/hubflow/pkg/hubflow"
)

// classify is what a failed Publish told its caller about the message:
// "not stored" (publishing it again is safe for every semantic) or "outcome
// unknown" (it may be stored; for ExactlyOnce, publishing again with the
// same ID inside the duplicate window is safe). An error that says neither
// breaks the library's contract and is reported.
func classify(err error) outcome {
	switch {
	case errors.Is(err, hubflow.ErrNotStored):
		return notStored
	case errors.Is(err, hubflow.ErrOutcomeUnknown):
		return unknown
	}
	return unclassified
}
