// Package credentials mints the short-lived NATS users hubflow hands to each
// Producer and Consumer. The manager holds an account signing key of a NATS
// server in operator (JWT) mode; with it, a user JWT and its seed are made
// locally, with no call to the server and no server restart: the server
// trusts any user JWT signed by a key its account JWT lists.
//
// Nothing here logs, and no error or String method ever carries a seed or a
// JWT. Public keys are not secrets and are shown freely.
package credentials

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"github.com/hubflow/hubflow/internal/semantic"
)

// MinTTL is the shortest credential lifetime the manager accepts: renewal
// happens when a third of it is left, and a renewed Secret needs time to
// reach a pod's volume (the kubelet syncs mounted Secrets about once a
// minute).
const MinTTL = 5 * time.Minute

// renewWhenLeft is the fraction of the TTL left at which credentials are
// renewed: at two thirds of their life.
const renewWhenLeft = 3

// Issuer signs user JWTs for one account.
type Issuer struct {
	signer    nkeys.KeyPair
	signerKey string // public key of signer
	account   string // public key of the account the users belong to
	ttl       time.Duration
}

// NewIssuer makes an Issuer from an account signing key's seed (bare, or
// decorated as nsc writes it) for account, the account's public key. The
// seed may also be the account's own identity key, though a signing key is
// what should be given: it can be removed from the account JWT without
// reissuing the account. The caller may wipe seed afterwards.
func NewIssuer(seed []byte, account string, ttl time.Duration) (*Issuer, error) {
	if !nkeys.IsValidPublicAccountKey(account) {
		return nil, errors.New("the account must be an account public key (it starts with A)")
	}
	if ttl <= 0 {
		return nil, fmt.Errorf("the credentials TTL must be positive, got %s", ttl)
	}
	if !bytes.Contains(seed, []byte("-----BEGIN")) {
		seed = bytes.TrimSpace(seed) // a bare seed, maybe with a trailing newline
	}
	kp, err := jwt.ParseDecoratedNKey(seed)
	if err != nil {
		// The parser's error never holds key material, but say less anyway.
		return nil, errors.New("no account seed found (want an nkey seed starting with SA)")
	}
	pub, err := kp.PublicKey()
	if err != nil || !nkeys.IsValidPublicAccountKey(pub) {
		kp.Wipe()
		return nil, errors.New("the seed is not an account key (want an nkey seed starting with SA)")
	}
	return &Issuer{signer: kp, signerKey: pub, account: account, ttl: ttl}, nil
}

// LoadIssuer reads a signing key seed file once, wiping the bytes read.
func LoadIssuer(seedFile, account string, ttl time.Duration) (*Issuer, error) {
	seed, err := os.ReadFile(seedFile)
	if err != nil {
		return nil, fmt.Errorf("reading the account signing key: %w", err)
	}
	defer wipe(seed)
	i, err := NewIssuer(seed, account, ttl)
	if err != nil {
		return nil, fmt.Errorf("account signing key %s: %w", seedFile, err)
	}
	return i, nil
}

func wipe(b []byte) {
	for i := range b {
		b[i] = 'x'
	}
}

// Account is the account public key users are issued for.
func (i *Issuer) Account() string { return i.account }

// SigningKey is the public key users are signed with.
func (i *Issuer) SigningKey() string { return i.signerKey }

// TTL is how long issued credentials live.
func (i *Issuer) TTL() time.Duration { return i.ttl }

// String describes the issuer by its public keys only, so that printing it
// by accident reveals nothing.
func (i Issuer) String() string {
	return fmt.Sprintf("account %s, signing key %s, ttl %s", i.account, i.signerKey, i.ttl)
}

// GoString is String, for %#v.
func (i Issuer) GoString() string { return i.String() }

// Issued is a freshly minted or a still valid user.
type Issued struct {
	// Creds is a NATS credentials file: the user JWT and its seed. Secret.
	Creds []byte
	// User is the user's public key, as the server's monitoring shows it.
	User    string
	Expires time.Time
}

// String leaves the credentials out.
func (c Issued) String() string {
	return fmt.Sprintf("user %s, expires %s", c.User, c.Expires.UTC().Format(time.RFC3339))
}

// GoString is String, for %#v.
func (c Issued) GoString() string { return c.String() }

// RenewAt is when credentials expiring at expires are due for renewal.
func (i *Issuer) RenewAt(expires time.Time) time.Time {
	return expires.Add(-i.ttl / renewWhenLeft)
}

// Issue mints a user named name (it shows in the server's monitoring) with
// perms, valid for the TTL from now.
func (i *Issuer) Issue(name string, perms semantic.Permissions, now time.Time) (Issued, error) {
	user, err := nkeys.CreateUser()
	if err != nil {
		return Issued{}, fmt.Errorf("creating a user key: %w", err)
	}
	defer user.Wipe()
	pub, err := user.PublicKey()
	if err != nil {
		return Issued{}, fmt.Errorf("creating a user key: %w", err)
	}
	claims := jwt.NewUserClaims(pub)
	claims.Name = name
	if i.signerKey != i.account {
		claims.IssuerAccount = i.account
	}
	// Whole seconds: that is what the JWT carries.
	expires := now.Add(i.ttl).Truncate(time.Second)
	claims.Expires = expires.Unix()
	// An allow list denies everything it does not name.
	claims.Pub.Allow.Add(perms.Publish...)
	claims.Sub.Allow.Add(perms.Subscribe...)
	token, err := claims.Encode(i.signer)
	if err != nil {
		return Issued{}, fmt.Errorf("signing the user JWT: %w", err)
	}
	seed, err := user.Seed()
	if err != nil {
		return Issued{}, fmt.Errorf("reading the user seed: %w", err)
	}
	defer wipe(seed)
	creds, err := jwt.FormatUserConfig(token, seed)
	if err != nil {
		return Issued{}, fmt.Errorf("formatting the credentials: %w", err)
	}
	return Issued{Creds: creds, User: pub, Expires: expires}, nil
}

// Stale is why credentials are no longer what the issuer would hand out.
type Stale string

const (
	Fresh         Stale = ""
	Missing       Stale = "no credentials yet"
	Unreadable    Stale = "the credentials could not be read"
	OtherSigner   Stale = "they were signed by another key or for another account"
	ScopeChanged  Stale = "their permissions no longer match the declared scope"
	Expiring      Stale = "they are due for renewal"
	LongerThanTTL Stale = "they outlive the configured TTL"
	NameChanged   Stale = "they were issued for another object"
	SeedMismatch  Stale = "the seed does not belong to the user JWT"
)

// Check tells whether creds, read back from a binding, are still what Issue
// would produce for name and perms: signed by this issuer for its account,
// with exactly these permissions, and not yet due for renewal. Fresh
// credentials are returned as Issued, so they can be kept as they are.
func (i *Issuer) Check(creds []byte, name string, perms semantic.Permissions, now time.Time) (Issued, Stale) {
	if len(creds) == 0 {
		return Issued{}, Missing
	}
	token, err := jwt.ParseDecoratedJWT(creds)
	if err != nil {
		return Issued{}, Unreadable
	}
	// Decoding verifies the signature against the claimed issuer.
	claims, err := jwt.DecodeUserClaims(token)
	if err != nil {
		return Issued{}, Unreadable
	}
	wantIssuerAccount := i.account
	if i.signerKey == i.account {
		wantIssuerAccount = ""
	}
	if claims.Issuer != i.signerKey || claims.IssuerAccount != wantIssuerAccount {
		return Issued{}, OtherSigner
	}
	if claims.Name != name {
		return Issued{}, NameChanged
	}
	if len(claims.Pub.Deny) > 0 || len(claims.Sub.Deny) > 0 || claims.Resp != nil || claims.BearerToken ||
		!perms.Equal(semantic.Permissions{Publish: claims.Pub.Allow, Subscribe: claims.Sub.Allow}) {
		return Issued{}, ScopeChanged
	}
	user, err := jwt.ParseDecoratedUserNKey(creds)
	if err != nil {
		return Issued{}, Unreadable
	}
	defer user.Wipe()
	if pub, err := user.PublicKey(); err != nil || pub != claims.Subject {
		return Issued{}, SeedMismatch
	}
	if claims.Expires == 0 {
		return Issued{}, LongerThanTTL
	}
	expires := time.Unix(claims.Expires, 0)
	switch {
	case expires.Sub(now) > i.ttl:
		return Issued{}, LongerThanTTL
	case !now.Before(i.RenewAt(expires)):
		return Issued{}, Expiring
	}
	return Issued{Creds: bytes.Clone(creds), User: claims.Subject, Expires: expires}, Fresh
}
