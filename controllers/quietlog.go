package controllers

import (
	"context"

	"github.com/go-logr/logr"
)

// bodyVerbosity is where client-go starts logging request and response
// bodies (rest.Request at V(8)); headers come at 7, with credentials masked.
const bodyVerbosity = 8

// withoutBodies returns ctx with its logger capped below bodyVerbosity, for
// the API calls that carry a binding Secret: its body holds credentials,
// which must not reach a log at any verbosity, while the calls' URLs and
// errors still may.
func withoutBodies(ctx context.Context) context.Context {
	log := logr.FromContextOrDiscard(ctx)
	if log.GetSink() == nil {
		return ctx
	}
	return logr.NewContext(ctx, logr.New(cappedSink{LogSink: log.GetSink(), below: bodyVerbosity}))
}

// cappedSink drops messages at or above a verbosity.
type cappedSink struct {
	logr.LogSink
	below int
}

func (s cappedSink) Enabled(level int) bool {
	return level < s.below && s.LogSink.Enabled(level)
}

func (s cappedSink) Info(level int, msg string, kv ...any) {
	if level < s.below {
		s.LogSink.Info(level, msg, kv...)
	}
}

func (s cappedSink) WithValues(kv ...any) logr.LogSink {
	return cappedSink{LogSink: s.LogSink.WithValues(kv...), below: s.below}
}

func (s cappedSink) WithName(name string) logr.LogSink {
	return cappedSink{LogSink: s.LogSink.WithName(name), below: s.below}
}
