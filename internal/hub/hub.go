// Package hub is hubflow's only door to JetStream: the few stream and
// consumer calls the controllers make, errors classified by JetStream error
// code, and the advisories that report changes made behind hubflow's back.
package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrNotFound is returned for a stream or consumer that does not exist.
var ErrNotFound = errors.New("not found on the hub")

// ErrUnreachable wraps failures to reach JetStream at all: the connection is
// down, or no server answers the API. The desired state is kept and the
// request is retried when the connection returns.
var ErrUnreachable = errors.New("NATS JetStream is unreachable")

// ErrExists wraps a create the server refused because a stream or durable
// of that name is already there with another configuration. (One with the
// very same configuration, metadata included, is not an error: the server
// answers with it.)
var ErrExists = errors.New("already on the hub")

// Client is the JetStream surface the controllers use.
type Client interface {
	Stream(ctx context.Context, name string) (*jetstream.StreamInfo, error)
	CreateStream(ctx context.Context, cfg jetstream.StreamConfig) (*jetstream.StreamInfo, error)
	UpdateStream(ctx context.Context, cfg jetstream.StreamConfig) (*jetstream.StreamInfo, error)
	DeleteStream(ctx context.Context, name string) error
	Consumer(ctx context.Context, stream, durable string) (*jetstream.ConsumerInfo, error)
	CreateConsumer(ctx context.Context, stream string, cfg jetstream.ConsumerConfig) (*jetstream.ConsumerInfo, error)
	UpdateConsumer(ctx context.Context, stream string, cfg jetstream.ConsumerConfig) (*jetstream.ConsumerInfo, error)
	DeleteConsumer(ctx context.Context, stream, durable string) error
	ListStreams(ctx context.Context) ([]*jetstream.StreamInfo, error)
	ListConsumers(ctx context.Context, stream string) ([]*jetstream.ConsumerInfo, error)
}

// JetStream implements Client on one long-lived NATS connection.
type JetStream struct {
	nc *nats.Conn
	js jetstream.JetStream
}

var _ Client = (*JetStream)(nil)

// New wraps a connection. It makes no request: the connection may still be
// establishing itself.
func New(nc *nats.Conn) (*JetStream, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream context: %w", err)
	}
	return &JetStream{nc: nc, js: js}, nil
}

func (h *JetStream) Stream(ctx context.Context, name string) (*jetstream.StreamInfo, error) {
	s, err := h.js.Stream(ctx, name)
	if err != nil {
		return nil, classify("read stream "+name, err)
	}
	return s.CachedInfo(), nil
}

func (h *JetStream) CreateStream(ctx context.Context, cfg jetstream.StreamConfig) (*jetstream.StreamInfo, error) {
	s, err := h.js.CreateStream(ctx, cfg)
	if err != nil {
		return nil, classify("create stream "+cfg.Name, err)
	}
	return s.CachedInfo(), nil
}

func (h *JetStream) UpdateStream(ctx context.Context, cfg jetstream.StreamConfig) (*jetstream.StreamInfo, error) {
	s, err := h.js.UpdateStream(ctx, cfg)
	if err != nil {
		return nil, classify("update stream "+cfg.Name, err)
	}
	return s.CachedInfo(), nil
}

// DeleteStream deletes a stream and every message in it; a missing stream is
// already deleted.
func (h *JetStream) DeleteStream(ctx context.Context, name string) error {
	err := classify("delete stream "+name, h.js.DeleteStream(ctx, name))
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

func (h *JetStream) Consumer(ctx context.Context, stream, durable string) (*jetstream.ConsumerInfo, error) {
	c, err := h.js.Consumer(ctx, stream, durable)
	if err != nil {
		return nil, classify("read consumer "+stream+"/"+durable, err)
	}
	return c.CachedInfo(), nil
}

func (h *JetStream) CreateConsumer(ctx context.Context, stream string, cfg jetstream.ConsumerConfig) (*jetstream.ConsumerInfo, error) {
	c, err := h.js.CreateConsumer(ctx, stream, cfg)
	if err != nil {
		return nil, classify("create consumer "+stream+"/"+cfg.Durable, err)
	}
	return c.CachedInfo(), nil
}

func (h *JetStream) UpdateConsumer(ctx context.Context, stream string, cfg jetstream.ConsumerConfig) (*jetstream.ConsumerInfo, error) {
	c, err := h.js.UpdateConsumer(ctx, stream, cfg)
	if err != nil {
		return nil, classify("update consumer "+stream+"/"+cfg.Durable, err)
	}
	return c.CachedInfo(), nil
}

// DeleteConsumer deletes a durable consumer; a missing one (or a missing
// stream) is already deleted.
func (h *JetStream) DeleteConsumer(ctx context.Context, stream, durable string) error {
	err := classify("delete consumer "+stream+"/"+durable, h.js.DeleteConsumer(ctx, stream, durable))
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// ListStreams reads every stream, config and state, with the server's paged
// listing: one request per 256 streams.
func (h *JetStream) ListStreams(ctx context.Context) ([]*jetstream.StreamInfo, error) {
	return list[jetstream.StreamInfo](ctx, h.nc, "$JS.API.STREAM.LIST", "streams")
}

// ListConsumers reads every consumer of a stream with the server's paged
// listing, without the stream lookup the jetstream package's lister makes
// first: one request per 256 consumers.
func (h *JetStream) ListConsumers(ctx context.Context, stream string) ([]*jetstream.ConsumerInfo, error) {
	return list[jetstream.ConsumerInfo](ctx, h.nc, "$JS.API.CONSUMER.LIST."+stream, "consumers")
}

// list pages through one of JetStream's list APIs.
func list[T any](ctx context.Context, nc *nats.Conn, subject, field string) ([]*T, error) {
	var out []*T
	for {
		req, _ := json.Marshal(map[string]int{"offset": len(out)})
		msg, err := nc.RequestWithContext(ctx, subject, req)
		if err != nil {
			return nil, classify(subject, err)
		}
		var page map[string]json.RawMessage
		if err := json.Unmarshal(msg.Data, &page); err != nil {
			return nil, fmt.Errorf("%s: decoding the reply: %w", subject, err)
		}
		if raw, ok := page["error"]; ok {
			apiErr := &jetstream.APIError{}
			if err := json.Unmarshal(raw, apiErr); err != nil {
				return nil, fmt.Errorf("%s: decoding the reply: %w", subject, err)
			}
			return nil, classify(subject, apiErr)
		}
		var total int
		var items []*T
		if err := errors.Join(json.Unmarshal(page["total"], &total), unmarshalIfSet(page[field], &items)); err != nil {
			return nil, fmt.Errorf("%s: decoding the reply: %w", subject, err)
		}
		out = append(out, items...)
		if len(items) == 0 || len(out) >= total {
			return out, nil
		}
	}
}

func unmarshalIfSet(raw json.RawMessage, v any) error {
	if raw == nil {
		return nil
	}
	return json.Unmarshal(raw, v)
}

// classify wraps err so callers can match it with errors.Is (ErrNotFound,
// ErrUnreachable) or errors.As (*jetstream.APIError, for its code).
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("%s: %w: %w", op, ErrNotFound, err)
	}
	if code, ok := APICode(err); errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) ||
		ok && (code == jetstream.JSErrCodeConsumerExists || code == jetstream.JSErrCodeConsumerNameExists) {
		return fmt.Errorf("%s: %w: %w", op, ErrExists, err)
	}
	if unreachable(err) {
		return fmt.Errorf("%s: %w: %w", op, ErrUnreachable, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

func unreachable(err error) bool {
	for _, e := range []error{
		nats.ErrNoResponders, nats.ErrTimeout, nats.ErrConnectionClosed, nats.ErrConnectionDraining,
		nats.ErrConnectionReconnecting, nats.ErrDisconnected, jetstream.ErrJetStreamNotEnabled,
		jetstream.ErrJetStreamNotEnabledForAccount, context.DeadlineExceeded,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// APICode is the JetStream API error code carried by err, if any.
func APICode(err error) (jetstream.ErrorCode, bool) {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode, true
	}
	return 0, false
}

// JetStream API error codes hubflow acts on that nats.go has no names for
// (from the server's error table).
const (
	// CodeConsumerCreate: the server refused a consumer's config or change.
	CodeConsumerCreate jetstream.ErrorCode = 10012
	// CodeStreamInvalidConfig: the server refused a stream's config or change.
	CodeStreamInvalidConfig jetstream.ErrorCode = 10052
	// CodeSubjectOverlap: another stream already captures these subjects.
	CodeSubjectOverlap jetstream.ErrorCode = 10065
	// CodeReplicasNotSupported: replicas > 1 on a server that is not clustered.
	CodeReplicasNotSupported jetstream.ErrorCode = 10074
)
