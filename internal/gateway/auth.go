package gateway

import (
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// TokenReviewer authenticates ServiceAccount tokens with the API server's
// TokenReview, for the gateway's audience only. Answers are kept for a
// short while, so a busy caller does not cost a review per request; a
// revoked token (its ServiceAccount or Pod deleted) is refused within
// CacheFor.
type TokenReviewer struct {
	Client   client.Client
	CacheFor time.Duration

	mu    sync.Mutex
	known map[[32]byte]review
}

type review struct {
	caller  Caller
	err     error
	expires time.Time
}

// maxKnownTokens bounds the cache; past it, it starts afresh.
const maxKnownTokens = 10000

func (t *TokenReviewer) Authenticate(ctx context.Context, token string) (Caller, error) {
	key := sha256.Sum256([]byte(token))
	now := time.Now()
	t.mu.Lock()
	if r, ok := t.known[key]; ok && now.Before(r.expires) {
		t.mu.Unlock()
		return r.caller, r.err
	}
	t.mu.Unlock()

	tr := &authnv1.TokenReview{
		ObjectMeta: metav1.ObjectMeta{},
		Spec:       authnv1.TokenReviewSpec{Token: token, Audiences: []string{Audience}},
	}
	if err := t.Client.Create(ctx, tr); err != nil {
		return Caller{}, fmt.Errorf("TokenReview: %w", err) // not cached: the API server may be back soon
	}
	caller, err := callerOf(tr.Status)
	t.mu.Lock()
	if t.known == nil || len(t.known) >= maxKnownTokens {
		t.known = map[[32]byte]review{}
	}
	t.known[key] = review{caller: caller, err: err, expires: now.Add(t.CacheFor)}
	t.mu.Unlock()
	return caller, err
}

// callerOf reads a TokenReview's answer: authenticated, for the gateway's
// audience, and a ServiceAccount.
func callerOf(s authnv1.TokenReviewStatus) (Caller, error) {
	if !s.Authenticated {
		return Caller{}, fmt.Errorf("%w: %s", ErrUnauthenticated, s.Error)
	}
	if !slices.Contains(s.Audiences, Audience) {
		return Caller{}, fmt.Errorf("%w: the token is for audiences %v", ErrUnauthenticated, s.Audiences)
	}
	rest, ok := strings.CutPrefix(s.User.Username, "system:serviceaccount:")
	ns, name, ok2 := strings.Cut(rest, ":")
	if !ok || !ok2 || ns == "" || name == "" {
		return Caller{}, fmt.Errorf("%w: %s is not a ServiceAccount", ErrUnauthenticated, s.User.Username)
	}
	return Caller{Namespace: ns, ServiceAccount: name}, nil
}
