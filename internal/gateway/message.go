package gateway

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"sort"
	"strings"

	"github.com/nats-io/nats.go"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
)

// CloudEvents over HTTP (https://github.com/cloudevents/spec) in either
// mode becomes one NATS message in the binary mode of the CloudEvents NATS
// binding: the data as the payload, each attribute as a "ce-<name>"
// header, the data's content type as "content-type". A consumer reads the
// same headers whichever mode the caller used.
const (
	cloudEventsJSON = "application/cloudevents+json"
	cePrefix        = "ce-"
)

// forwarded are the HTTP headers kept on the message besides CloudEvents
// attributes: trace context, so a trace crosses the gateway.
var forwarded = []string{"Traceparent", "Tracestate", "Baggage"}

// message builds the NATS message of a publish request.
func message(r *http.Request, topic *hubflowv1.Topic, p *hubflowv1.Producer, maxPayload int64) (*nats.Msg, error) {
	subject, err := subjectFor(r, topic, p)
	if err != nil {
		return nil, err
	}
	limit := maxPayload
	if rl := topic.Spec.Retention; rl != nil && rl.MaxMessageSize != nil && rl.MaxMessageSize.Value() < limit {
		limit = rl.MaxMessageSize.Value()
	}
	body, err := readBody(r.Body, limit)
	if err != nil {
		return nil, err
	}
	m := nats.NewMsg(subject)
	for _, h := range forwarded {
		if v := r.Header.Get(h); v != "" {
			m.Header.Set(strings.ToLower(h), v)
		}
	}
	contentType := r.Header.Get("Content-Type")
	if mediaType, _, _ := mime.ParseMediaType(contentType); mediaType == cloudEventsJSON {
		return structured(m, body)
	}
	for name, values := range r.Header {
		if lower := strings.ToLower(name); strings.HasPrefix(lower, cePrefix) && len(values) > 0 {
			m.Header.Set(lower, values[0])
		}
	}
	if contentType != "" {
		m.Header.Set("content-type", contentType)
	}
	m.Data = body
	return m, nil
}

// structured reads a structured-mode CloudEvent: a JSON object of
// attributes with the data in "data" (JSON, or a string) or "data_base64".
func structured(m *nats.Msg, body []byte) (*nats.Msg, error) {
	var event map[string]json.RawMessage
	if err := json.Unmarshal(body, &event); err != nil {
		return nil, fmt.Errorf("a %s body must be a JSON object: %w", cloudEventsJSON, err)
	}
	for _, required := range []string{"specversion", "id", "source", "type"} {
		if _, ok := event[required]; !ok {
			return nil, fmt.Errorf("the CloudEvent has no %q attribute", required)
		}
	}
	names := make([]string, 0, len(event))
	for name := range event {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		raw := event[name]
		switch name {
		case "data":
			var s string
			if json.Unmarshal(raw, &s) == nil {
				m.Data = []byte(s)
			} else {
				m.Data = raw
			}
		case "data_base64":
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return nil, fmt.Errorf("data_base64 must be a string: %w", err)
			}
			data, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				return nil, fmt.Errorf("data_base64: %w", err)
			}
			m.Data = data
		case "datacontenttype":
			var s string
			_ = json.Unmarshal(raw, &s)
			m.Header.Set("content-type", s)
		default:
			var s string
			if json.Unmarshal(raw, &s) != nil {
				s = string(raw) // numbers and booleans keep their JSON text
			}
			m.Header.Set(cePrefix+name, s)
		}
	}
	if _, ok := event["data"]; ok {
		if _, typed := event["datacontenttype"]; !typed {
			m.Header.Set("content-type", "application/json")
		}
	}
	return m, nil
}
