// Package gateway is hubflow's HTTP ingest: a caller that cannot run a
// NATS client (a shell script, a webhook, a legacy system) POSTs a message
// to a Topic and gets the answer its Producer's semantic promises.
// AtMostOnce answers once the message is sent; AtLeastOnce and ExactlyOnce
// only once the stream stored it, and ExactlyOnce takes the caller's
// Idempotency-Key as the message id, so a retry after a timeout is stored
// once within the duplicate window. The gateway holds the only NATS
// credentials; callers prove who they are with a Kubernetes ServiceAccount
// token, and a Producer names the ServiceAccounts that may publish as it.
package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/internal/semantic"
)

// Audience is the token audience the gateway accepts: a token minted for
// another audience (the API server's, say) is refused, so a token leaked
// from elsewhere cannot publish.
const Audience = "hubflow-gateway"

// IdempotencyKeyHeader is the HTTP header an ExactlyOnce caller must send.
const IdempotencyKeyHeader = "Idempotency-Key"

// Caller is who a token belongs to.
type Caller struct {
	Namespace, ServiceAccount string
}

// Authenticator checks a bearer token.
type Authenticator interface {
	Authenticate(ctx context.Context, token string) (Caller, error)
}

// ErrUnauthenticated: the token is missing, invalid, expired or for
// another audience.
var ErrUnauthenticated = errors.New("unauthenticated")

// Config is what a gateway needs.
type Config struct {
	// Reader reads Topics and Producers, from a cache.
	Reader client.Reader
	NATS   *nats.Conn
	Auth   Authenticator
	// PublishTimeout bounds the wait for the stream's acknowledgement.
	PublishTimeout time.Duration
	// Registry gets the gateway's metrics; nil for none.
	Registry prometheus.Registerer
}

// Gateway serves the HTTP API.
type Gateway struct {
	cfg      Config
	js       jetstream.JetStream
	mux      *http.ServeMux
	limiters sync.Map // "<ns>/<producer>" -> *limiter
	requests *prometheus.CounterVec
	draining atomic.Bool
}

// New builds a gateway.
func New(cfg Config) (*Gateway, error) {
	js, err := jetstream.New(cfg.NATS)
	if err != nil {
		return nil, err
	}
	if cfg.PublishTimeout <= 0 {
		cfg.PublishTimeout = 5 * time.Second
	}
	g := &Gateway{cfg: cfg, js: js, mux: http.NewServeMux()}
	g.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hubflow_gateway_requests_total",
		Help: "Publish requests the gateway answered, by namespace, Topic and HTTP status code.",
	}, []string{"namespace", "topic", "code"})
	if cfg.Registry != nil {
		if err := cfg.Registry.Register(g.requests); err != nil {
			return nil, err
		}
	}
	g.mux.HandleFunc("POST /v1/namespaces/{namespace}/topics/{topic}/messages", g.publish)
	g.mux.HandleFunc("GET /readyz", g.ready)
	g.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	return g, nil
}

// ServeHTTP serves the API.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) { g.mux.ServeHTTP(w, r) }

// Drain makes readiness fail, so load balancers stop sending requests
// before the server shuts down; requests in flight are finished.
func (g *Gateway) Drain() { g.draining.Store(true) }

// ready follows the hub connection: a gateway that cannot reach the hub
// would answer every publish with 503.
func (g *Gateway) ready(w http.ResponseWriter, _ *http.Request) {
	switch {
	case g.draining.Load():
		http.Error(w, "draining", http.StatusServiceUnavailable)
	case !g.cfg.NATS.IsConnected():
		http.Error(w, "not connected to the hub", http.StatusServiceUnavailable)
	default:
		w.WriteHeader(http.StatusOK)
	}
}

// Published is the answer to a publish.
type Published struct {
	Topic    string `json:"topic"`
	Producer string `json:"producer"`
	Semantic string `json:"semantic"`
	Subject  string `json:"subject"`
	// Stream and Sequence are set once the stream stored the message.
	Stream   string `json:"stream,omitempty"`
	Sequence uint64 `json:"sequence,omitempty"`
	// Duplicate: the stream already held a message with this
	// Idempotency-Key (within its duplicate window); nothing new was stored.
	Duplicate bool `json:"duplicate,omitempty"`
	// Stored is false for AtMostOnce: the message was sent, not confirmed.
	Stored bool `json:"stored"`
}

// problem is an error answer; Outcome tells a caller whether a retry could
// store the message twice.
type problem struct {
	Error string `json:"error"`
	// Outcome: "not stored" (safe to retry), "unknown" (sent, no answer:
	// retry with the same Idempotency-Key under ExactlyOnce).
	Outcome string `json:"outcome,omitempty"`
}

func (g *Gateway) publish(w http.ResponseWriter, r *http.Request) {
	ns, topicName := r.PathValue("namespace"), r.PathValue("topic")
	code, answer, retryAfter := g.handle(r, ns, topicName)
	if retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(retryAfter.Round(time.Second)/time.Second)))
	}
	if code == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="hubflow-gateway"`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(answer)
	g.requests.WithLabelValues(ns, topicName, strconv.Itoa(code)).Inc()
}

func fail(code int, outcome, format string, args ...any) (int, any, time.Duration) {
	return code, problem{Error: fmt.Sprintf(format, args...), Outcome: outcome}, 0
}

// handle decides the answer to one publish request.
func (g *Gateway) handle(r *http.Request, ns, topicName string) (int, any, time.Duration) {
	ctx := r.Context()
	if g.draining.Load() {
		return http.StatusServiceUnavailable, problem{Error: "the gateway is shutting down; retry on another replica", Outcome: "not stored"}, time.Second
	}
	token, ok := bearer(r)
	if !ok {
		return fail(http.StatusUnauthorized, "not stored", "send a ServiceAccount token with audience %q as Authorization: Bearer <token>", Audience)
	}
	caller, err := g.cfg.Auth.Authenticate(ctx, token)
	if errors.Is(err, ErrUnauthenticated) {
		return fail(http.StatusUnauthorized, "not stored", "the token is not valid for audience %q: %v", Audience, err)
	}
	if err != nil {
		return http.StatusServiceUnavailable, problem{Error: "cannot check the token now: " + err.Error(), Outcome: "not stored"}, 2 * time.Second
	}
	var topic hubflowv1.Topic
	if err := g.cfg.Reader.Get(ctx, client.ObjectKey{Namespace: ns, Name: topicName}, &topic); err != nil {
		if client.IgnoreNotFound(err) == nil {
			return fail(http.StatusNotFound, "not stored", "Topic %s/%s does not exist", ns, topicName)
		}
		return http.StatusServiceUnavailable, problem{Error: err.Error(), Outcome: "not stored"}, 2 * time.Second
	}
	producer, err := g.producerFor(ctx, caller, &topic, r.URL.Query().Get("producer"))
	if err != nil {
		return fail(http.StatusForbidden, "not stored", "%v", err)
	}
	if !ready(producer.Status.Conditions) || producer.Status.StreamName == "" {
		return http.StatusServiceUnavailable, problem{Error: fmt.Sprintf("Producer %s is not Ready; kubectl describe producer %s says why", producer.Name, producer.Name), Outcome: "not stored"}, 5 * time.Second
	}
	if l := g.limiter(producer); l != nil && !l.Allow() {
		return http.StatusTooManyRequests, problem{Error: fmt.Sprintf("Producer %s allows %d requests per second (spec.gateway.requestsPerSecond)", producer.Name, *producer.Spec.Gateway.RequestsPerSecond), Outcome: "not stored"}, time.Second
	}
	msg, err := message(r, &topic, producer, g.cfg.NATS.MaxPayload())
	var tooLarge *tooLargeError
	switch {
	case errors.As(err, &tooLarge):
		return fail(http.StatusRequestEntityTooLarge, "not stored", "%v", err)
	case err != nil:
		return fail(http.StatusBadRequest, "not stored", "%v", err)
	}
	sem := hubflowv1.DeliverySemantic(producer.Status.Semantic)
	answer := Published{Topic: topic.Name, Producer: producer.Name, Semantic: string(sem), Subject: msg.Subject}
	key := r.Header.Get(IdempotencyKeyHeader)
	if sem == hubflowv1.ExactlyOnce && key == "" {
		return fail(http.StatusBadRequest, "not stored", "Topic %s is ExactlyOnce: send an %s header, the same on every retry of this message, so a retry is never stored twice", topic.Name, IdempotencyKeyHeader)
	}
	if key != "" {
		msg.Header.Set(nats.MsgIdHdr, key)
	}
	if !g.cfg.NATS.IsConnected() {
		return http.StatusServiceUnavailable, problem{Error: "the gateway is not connected to the hub", Outcome: "not stored"}, time.Second
	}
	if sem == hubflowv1.AtMostOnce {
		if err := g.cfg.NATS.PublishMsg(msg); err != nil {
			return http.StatusServiceUnavailable, problem{Error: err.Error(), Outcome: "not stored"}, time.Second
		}
		return http.StatusAccepted, answer, 0
	}
	pctx, cancel := context.WithTimeout(ctx, g.cfg.PublishTimeout)
	defer cancel()
	ack, err := g.js.PublishMsg(pctx, msg, jetstream.WithExpectStream(producer.Status.StreamName))
	if err != nil {
		return publishFailure(err)
	}
	answer.Stream, answer.Sequence, answer.Duplicate, answer.Stored = ack.Stream, ack.Sequence, ack.Duplicate, true
	if ack.Duplicate {
		return http.StatusOK, answer, 0
	}
	return http.StatusCreated, answer, 0
}

// publishFailure tells a refusal (nothing stored: 4xx, or 503 to retry)
// from a lost answer (perhaps stored: 503 with outcome unknown).
func publishFailure(err error) (int, any, time.Duration) {
	var apiErr *jetstream.APIError
	switch {
	case errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamMessageExceedsMaximum:
		return fail(http.StatusRequestEntityTooLarge, "not stored", "the stream refused the message: %v", err)
	case errors.As(err, &apiErr) && apiErr.Code >= 400 && apiErr.Code < 500:
		return http.StatusServiceUnavailable, problem{Error: "the stream refused the message: " + err.Error(), Outcome: "not stored"}, 5 * time.Second
	case errors.Is(err, jetstream.ErrNoStreamResponse), errors.Is(err, nats.ErrNoResponders):
		return http.StatusServiceUnavailable, problem{Error: "no stream answered: " + err.Error(), Outcome: "not stored"}, time.Second
	default:
		return http.StatusServiceUnavailable, problem{Error: "no answer from the stream: " + err.Error(), Outcome: "unknown"}, time.Second
	}
}

// producerFor is the Ready-or-not Producer of topic that lets caller
// publish: named by ?producer=, else the first by name.
func (g *Gateway) producerFor(ctx context.Context, caller Caller, topic *hubflowv1.Topic, named string) (*hubflowv1.Producer, error) {
	if caller.Namespace != topic.Namespace {
		return nil, fmt.Errorf("serviceaccount %s/%s may not publish to namespace %s: only its own namespace's Producers can name it", caller.Namespace, caller.ServiceAccount, topic.Namespace)
	}
	var list hubflowv1.ProducerList
	if err := g.cfg.Reader.List(ctx, &list, client.InNamespace(topic.Namespace)); err != nil {
		return nil, err
	}
	slices.SortFunc(list.Items, func(a, b hubflowv1.Producer) int { return strings.Compare(a.Name, b.Name) })
	for i := range list.Items {
		p := &list.Items[i]
		if p.Spec.TopicRef.Name != topic.Name || p.Spec.Gateway == nil || (named != "" && p.Name != named) {
			continue
		}
		if slices.Contains(p.Spec.Gateway.ServiceAccounts, caller.ServiceAccount) {
			return p, nil
		}
	}
	if named != "" {
		return nil, fmt.Errorf("Producer %s of Topic %s does not let serviceaccount %s publish (spec.gateway.serviceAccounts)", named, topic.Name, caller.ServiceAccount)
	}
	return nil, fmt.Errorf("no Producer of Topic %s lets serviceaccount %s publish: list it in a Producer's spec.gateway.serviceAccounts", topic.Name, caller.ServiceAccount)
}

func (g *Gateway) limiter(p *hubflowv1.Producer) *rate.Limiter {
	if p.Spec.Gateway.RequestsPerSecond == nil {
		return nil
	}
	perSecond := int(*p.Spec.Gateway.RequestsPerSecond)
	key := p.Namespace + "/" + p.Name
	if l, ok := g.limiters.Load(key); ok {
		if lim := l.(*rate.Limiter); lim.Burst() == perSecond {
			return lim
		}
	}
	lim := rate.NewLimiter(rate.Limit(perSecond), perSecond)
	g.limiters.Store(key, lim)
	return lim
}

func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	const prefix = "Bearer "
	if len(h) <= len(prefix) || h[:len(prefix)] != prefix {
		return "", false
	}
	return h[len(prefix):], true
}

func ready(conds []metav1.Condition) bool {
	return meta.IsStatusConditionTrue(conds, hubflowv1.ConditionReady)
}

// tooLargeError: the body exceeds the Topic's maximum message size or the
// hub's maximum payload.
type tooLargeError struct{ limit int64 }

func (e *tooLargeError) Error() string {
	return fmt.Sprintf("the message is larger than %d bytes, the most this Topic takes", e.limit)
}

// readBody reads at most limit bytes.
func readBody(r io.Reader, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading the body: %w", err)
	}
	if int64(len(data)) > limit {
		return nil, &tooLargeError{limit: limit}
	}
	return data, nil
}

// wildcards are the characters a subject to publish on may not hold.
const wildcards = "*>"

// validSubject: non-empty tokens, no whitespace, no wildcards. The server
// refuses anything else, and the caller should hear 400, not 503.
func validSubject(s string) bool {
	if s == "" || strings.ContainsAny(s, wildcards+" \t\r\n") {
		return false
	}
	return !slices.Contains(strings.Split(s, "."), "")
}

// subjectFor is the subject a request publishes on: ?subject=, else the
// Producer's first subject without wildcards, else the Topic's base
// subject. It must lie inside the Producer's subjects.
func subjectFor(r *http.Request, topic *hubflowv1.Topic, p *hubflowv1.Producer) (string, error) {
	allowed := p.Status.Subjects
	if len(allowed) == 0 {
		allowed = semantic.TopicSubjects(topic)
	}
	subject := r.URL.Query().Get("subject")
	if subject == "" {
		for _, s := range allowed {
			if !strings.ContainsAny(s, wildcards) {
				subject = s
				break
			}
		}
	}
	if subject == "" {
		return "", fmt.Errorf("Producer %s has only wildcard subjects %v: name one with ?subject=", p.Name, allowed)
	}
	if !validSubject(subject) {
		return "", fmt.Errorf("subject %q is not a NATS subject to publish on: tokens separated by single dots, no spaces, no wildcards", subject)
	}
	if !semantic.CoveredByAny(allowed, subject) {
		return "", fmt.Errorf("subject %q is not one Producer %s may publish on (%v)", subject, p.Name, allowed)
	}
	return subject, nil
}
