package controllers

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/internal/credentials"
	"github.com/hubflow/hubflow/internal/semantic"
	"github.com/hubflow/hubflow/pkg/binding"
)

// BindingLabel marks the Secrets hubflow writes bindings to. The manager
// caches only Secrets that carry it (see CacheOptions), so it never reads
// any other Secret's data.
const BindingLabel = "hubflow.io/binding"

// CacheOptions restrict the manager's informer cache: of all Secrets, it
// lists and watches only binding Secrets, and with namespaces, it watches
// only those (so its RBAC can be granted per namespace). Pass them to
// ctrl.NewManager.
func CacheOptions(namespaces ...string) cache.Options {
	opts := cache.Options{
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}: {Label: labels.SelectorFromSet(labels.Set{BindingLabel: "true"})},
		},
	}
	if len(namespaces) > 0 {
		opts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range namespaces {
			opts.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	return opts
}

// Reasons of the binding and its credentials.
const (
	ReasonIssued          = "Issued"
	ReasonHubWithoutAuth  = "HubWithoutAuth"
	ReasonNotRenewed      = "NotRenewed"
	ReasonBindingConflict = "BindingConflict"
)

// bindingRequest is what a Producer or Consumer needs in its binding.
type bindingRequest struct {
	owner client.Object
	// secret is the binding Secret's name.
	secret string
	// binding is everything but the URL and the credentials.
	binding binding.Binding
	perms   semantic.Permissions
}

// user names the NATS user in the server's monitoring.
func (b bindingRequest) user() string {
	return fmt.Sprintf("hubflow %s %s/%s", b.binding.Role, b.owner.GetNamespace(), b.owner.GetName())
}

// bindingResult is what writing a binding did.
type bindingResult struct {
	// conflict is set when the Secret's name is taken by another object.
	conflict string
	created  bool
	updated  bool
	// creds are the credentials in the Secret; nil on a hub without auth.
	creds *credentials.Issued
	// minted says why new credentials were issued; Fresh when they were kept.
	minted credentials.Stale
	// issuer signed or checked creds.
	issuer *credentials.Issuer
	// dropped lists binding Secrets of the object under an earlier name.
	dropped []string
}

// errCacheLag means the binding Secret exists but the cache has not seen it
// yet; the reconcile is retried shortly, without a write.
var errCacheLag = errors.New("binding Secret not in the cache yet")

// bind makes the object's binding Secret hold what req says, with
// credentials that are fresh for req's scope. It writes only what changed:
// credentials are minted only when missing, out of scope, signed by another
// key, or due for renewal, so a no-op reconcile writes nothing.
func (r reconciler) bind(ctx context.Context, req bindingRequest) (bindingResult, error) {
	ctx = withoutBodies(ctx)
	var res bindingResult
	key := client.ObjectKey{Namespace: req.owner.GetNamespace(), Name: req.secret}
	var existing corev1.Secret
	found := true
	if err := r.client.Get(ctx, key, &existing); apierrors.IsNotFound(err) {
		found = false
	} else if err != nil {
		return res, fmt.Errorf("reading binding Secret %s: %w", req.secret, err)
	}
	if found && !metav1.IsControlledBy(&existing, req.owner) {
		res.conflict = conflictMessage(req, &existing)
		return res, nil
	}

	b := req.binding
	b.URL = r.bindingURL
	issuer, err := r.issuerFor(ctx, key.Namespace)
	if err != nil {
		return res, err
	}
	if issuer != nil {
		now := time.Now()
		issued, stale := issuer.Check(existing.Data[binding.KeyCreds], req.user(), req.perms, now)
		res.issuer = issuer
		if stale != credentials.Fresh {
			var err error
			if issued, err = issuer.Issue(req.user(), req.perms, now); err != nil {
				return res, fmt.Errorf("issuing credentials: %w", err)
			}
		}
		res.creds, res.minted = &issued, stale
		b.Creds = issued.Creds
	}
	desired := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name, Labels: map[string]string{BindingLabel: "true"}},
		Type:       binding.SecretType,
		Data:       b.Data(),
	}
	if err := controllerutil.SetControllerReference(req.owner, desired, r.scheme); err != nil {
		return res, err
	}

	switch {
	case !found:
		err := r.client.Create(ctx, desired)
		if apierrors.IsAlreadyExists(err) {
			return r.reclaim(ctx, req, desired, res)
		}
		if err != nil {
			return res, fmt.Errorf("creating binding Secret %s: %w", req.secret, err)
		}
		res.created = true
	case existing.Type != desired.Type:
		// The type of a Secret cannot change; a Secret of another type
		// with hubflow's owner reference was not written by hubflow.
		res.conflict = fmt.Sprintf("Secret %s has type %s, not %s: delete it, and hubflow writes the binding again", req.secret, existing.Type, binding.SecretType)
		return res, nil
	case !maps.EqualFunc(existing.Data, desired.Data, bytesEqual) || existing.Labels[BindingLabel] != "true":
		updated := existing.DeepCopy()
		if updated.Labels == nil {
			updated.Labels = map[string]string{}
		}
		updated.Labels[BindingLabel] = "true"
		updated.Data = desired.Data
		if err := r.client.Update(ctx, updated); err != nil {
			if apierrors.IsConflict(err) {
				return res, errCacheLag
			}
			return res, fmt.Errorf("updating binding Secret %s: %w", req.secret, err)
		}
		res.updated = true
	}
	dropped, err := r.dropStaleBindings(ctx, req)
	res.dropped = dropped
	return res, err
}

// reclaim handles a Create refused because the Secret exists though the
// cache does not show it: either the cache lags, or the Secret lost the
// binding label. Only its metadata is read, never its data.
func (r reconciler) reclaim(ctx context.Context, req bindingRequest, desired *corev1.Secret, res bindingResult) (bindingResult, error) {
	var m metav1.PartialObjectMetadata
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	if err := r.apiReader.Get(ctx, client.ObjectKeyFromObject(desired), &m); err != nil {
		return res, fmt.Errorf("reading binding Secret %s: %w", req.secret, err)
	}
	switch {
	case !metav1.IsControlledBy(&m, req.owner):
		res.conflict = conflictMessage(req, &m)
		return res, nil
	case m.Labels[BindingLabel] == "true":
		return res, errCacheLag
	}
	// Ours, but unlabelled, so the cache cannot show it: write it whole.
	desired.ResourceVersion = m.ResourceVersion
	if err := r.client.Update(ctx, desired); err != nil {
		return res, fmt.Errorf("updating binding Secret %s: %w", req.secret, err)
	}
	res.updated = true
	return res, nil
}

func conflictMessage(req bindingRequest, secret metav1.Object) string {
	controller := "none"
	if ref := metav1.GetControllerOfNoCopy(secret); ref != nil {
		controller = ref.Kind + " " + ref.Name
	}
	return fmt.Sprintf("Secret %s already exists and is not this %s's binding (its controller: %s); hubflow does not overwrite it: set spec.bindingSecretName to another name, or delete that Secret",
		req.secret, req.binding.Role, controller)
}

func bytesEqual(a, b []byte) bool { return string(a) == string(b) }

// dropStaleBindings deletes the object's binding Secrets under names it no
// longer uses (its bindingSecretName changed), so no second copy of its
// credentials lingers.
func (r reconciler) dropStaleBindings(ctx context.Context, req bindingRequest) ([]string, error) {
	var list corev1.SecretList
	if err := r.client.List(ctx, &list, client.InNamespace(req.owner.GetNamespace()),
		client.MatchingFields{secretOwnerIndex: string(req.owner.GetUID())}); err != nil {
		return nil, fmt.Errorf("listing binding Secrets: %w", err)
	}
	var dropped []string
	for i := range list.Items {
		s := &list.Items[i]
		if s.Name == req.secret || !metav1.IsControlledBy(s, req.owner) {
			continue
		}
		err := r.client.Delete(ctx, s, client.Preconditions{UID: &s.UID})
		if client.IgnoreNotFound(err) != nil {
			return dropped, fmt.Errorf("deleting stale binding Secret %s: %w", s.Name, err)
		}
		dropped = append(dropped, s.Name)
	}
	return dropped, nil
}

// report records a binding's outcome in the object's status and events:
// status.binding, the CredentialsIssued condition, and an event only when
// an existing binding was changed or restored. It returns false when the binding could not be
// written (its conditions then say why).
func (r reconciler) report(obj client.Object, req bindingRequest, res bindingResult, conds conditions, ref **hubflowv1.BindingReference) bool {
	for _, name := range res.dropped {
		r.recorder.Eventf(obj, nil, corev1.EventTypeNormal, "BindingRemoved", "Delete",
			"deleted binding Secret %s: the binding is now written to %s", name, req.secret)
	}
	if res.conflict != "" {
		*ref = nil
		conds.failed(false, ReasonBindingConflict, "%s", res.conflict)
		return false
	}
	restored := res.created && *ref != nil && (*ref).Name == req.secret
	*ref = &hubflowv1.BindingReference{Name: req.secret}

	if res.creds == nil {
		conds.set(hubflowv1.ConditionCredentialsIssued, false, ReasonHubWithoutAuth,
			"the manager holds no account signing key, so binding Secret %s carries no NATS credentials: right for a development hub without auth (see docs/credentials.md)", req.secret)
	} else {
		recordCredentialsExpiry(obj, res.creds.Expires)
		conds.set(hubflowv1.ConditionCredentialsIssued, true, ReasonIssued,
			"binding Secret %s holds credentials for NATS user %s, valid until %s; they are renewed from %s",
			req.secret, res.creds.User, stamp(res.creds.Expires), stamp(res.issuer.RenewAt(res.creds.Expires)))
	}

	minted := res.creds != nil && res.minted != credentials.Fresh
	validity := ""
	if res.creds != nil {
		validity = fmt.Sprintf(" for NATS user %s, valid until %s", res.creds.User, stamp(res.creds.Expires))
	}
	// A binding's first write gets no event: status.binding and the
	// CredentialsIssued condition say all of it, and an event per new
	// object would be most of the writes a large apply causes. Events tell
	// what changed an existing binding, or went wrong.
	switch {
	case restored:
		r.recorder.Eventf(obj, nil, corev1.EventTypeWarning, "BindingRestored", "Create",
			"binding Secret %s was deleted outside hubflow and has been written again%s", req.secret, validity)
	case res.created:
	case minted && res.minted == credentials.Missing:
		r.recorder.Eventf(obj, nil, corev1.EventTypeNormal, "CredentialsIssued", "Update",
			"added credentials to binding Secret %s%s", req.secret, validity)
	case minted:
		r.recorder.Eventf(obj, nil, corev1.EventTypeNormal, "CredentialsRotated", "Update",
			"replaced the credentials in binding Secret %s because %s; new ones%s", req.secret, res.minted, validity)
	case res.updated:
		r.recorder.Eventf(obj, nil, corev1.EventTypeNormal, "BindingUpdated", "Update",
			"updated binding Secret %s to the current spec", req.secret)
	}
	return true
}

// notRenewed flips a True CredentialsIssued condition when the object is
// not ready: its credentials are no longer renewed and run out at their
// expiry, which bounds how long a broken or refused object keeps access.
func notRenewed(status *hubflowv1.CommonStatus, conds conditions, kind string) {
	if isReady(status.Conditions) {
		return
	}
	if c := meta.FindStatusCondition(status.Conditions, hubflowv1.ConditionCredentialsIssued); c != nil && c.Status == metav1.ConditionTrue {
		conds.set(hubflowv1.ConditionCredentialsIssued, false, ReasonNotRenewed,
			"credentials are not renewed while the %s is not ready; those already issued expire on their own", kind)
	}
}

// renewal is when a reconcile must come back to renew res's credentials;
// zero when there is nothing to renew. A little positive jitter spreads the
// renewals of objects created together.
func (r reconciler) renewal(res bindingResult) time.Duration {
	if res.creds == nil || res.issuer == nil {
		return 0
	}
	due := time.Until(res.issuer.RenewAt(res.creds.Expires))
	return max(due, time.Second) + time.Duration(rand.Int64N(int64(res.issuer.TTL())/50+1))
}

// cacheLagRetry is the result of a reconcile that met errCacheLag: the
// cache catches up within moments, so it is retried then, without an error.
var cacheLagRetry = ctrl.Result{RequeueAfter: time.Second}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }
