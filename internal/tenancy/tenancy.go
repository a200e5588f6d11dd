// Package tenancy gives each Kubernetes namespace a NATS account of its own
// on a hub in operator (JWT) mode, so that a namespace is a tenant boundary
// NATS enforces: streams, durables and subjects of one account are invisible
// to every other, whatever a user's permissions say.
//
// An Authority holds an operator signing key and a root secret. Each
// namespace's account keys are derived from the root secret (HMAC-SHA256 of
// the namespace), never generated at random and stored: a manager that
// restarts, or a second replica, finds the very same account, and there is
// no key store to lose or to leak. The account JWT, signed with the operator
// signing key, enables JetStream with the configured limits and is pushed to
// the servers' account resolver through the system account.
//
// Nothing here logs, and no error or String method carries a seed, the root
// secret or a JWT. Public keys are not secrets.
package tenancy

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/hubflow/hubflow/internal/credentials"
)

// MinRootSecret is the shortest root secret accepted, in bytes.
const MinRootSecret = 32

// Limits are the JetStream limits every tenant account gets; -1 is
// unlimited. An account without JetStream limits has no JetStream at all,
// so zero values are refused.
type Limits struct {
	MemoryStorage, DiskStorage int64
	Streams, Consumers         int64
}

// Unlimited lets a tenant use whatever the servers have.
var Unlimited = Limits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumers: -1}

func (l Limits) validate() error {
	for _, v := range []struct {
		name string
		v    int64
	}{{"memory storage", l.MemoryStorage}, {"disk storage", l.DiskStorage}, {"streams", l.Streams}, {"consumers", l.Consumers}} {
		if v.v == 0 || v.v < -1 {
			return fmt.Errorf("tenant JetStream limit on %s: want a positive number or -1 (unlimited), got %d", v.name, v.v)
		}
	}
	return nil
}

// Authority makes and signs the tenant accounts.
type Authority struct {
	operator    nkeys.KeyPair // an operator signing key
	operatorKey string
	root        []byte
	limits      Limits
}

// NewAuthority takes an operator signing key's seed (bare or decorated) and
// the root secret the account keys are derived from. The caller may wipe
// both afterwards.
func NewAuthority(operatorSeed, root []byte, limits Limits) (*Authority, error) {
	if err := limits.validate(); err != nil {
		return nil, err
	}
	root = bytes.TrimSpace(root)
	if len(root) < MinRootSecret {
		return nil, fmt.Errorf("the tenant root secret must hold at least %d bytes, got %d (make one with: head -c 48 /dev/urandom | base64)", MinRootSecret, len(root))
	}
	if !bytes.Contains(operatorSeed, []byte("-----BEGIN")) {
		operatorSeed = bytes.TrimSpace(operatorSeed)
	}
	kp, err := jwt.ParseDecoratedNKey(operatorSeed)
	if err != nil {
		return nil, errors.New("no operator seed found (want an nkey seed starting with SO)")
	}
	pub, err := kp.PublicKey()
	if err != nil || !nkeys.IsValidPublicOperatorKey(pub) {
		kp.Wipe()
		return nil, errors.New("the seed is not an operator key (want an nkey seed starting with SO)")
	}
	return &Authority{operator: kp, operatorKey: pub, root: bytes.Clone(root), limits: limits}, nil
}

// LoadAuthority reads the two secret files once, wiping the bytes read.
func LoadAuthority(operatorSeedFile, rootFile string, limits Limits) (*Authority, error) {
	seed, err := os.ReadFile(operatorSeedFile)
	if err != nil {
		return nil, fmt.Errorf("reading the operator signing key: %w", err)
	}
	defer wipe(seed)
	root, err := os.ReadFile(rootFile)
	if err != nil {
		return nil, fmt.Errorf("reading the tenant root secret: %w", err)
	}
	defer wipe(root)
	return NewAuthority(seed, root, limits)
}

func wipe(b []byte) {
	for i := range b {
		b[i] = 'x'
	}
}

// OperatorSigningKey is the public key account JWTs are signed with.
func (a *Authority) OperatorSigningKey() string { return a.operatorKey }

// String names the public key only.
func (a Authority) String() string { return "tenant authority, operator signing key " + a.operatorKey }

// GoString is String, for %#v.
func (a Authority) GoString() string { return a.String() }

// Account is one namespace's NATS account.
type Account struct {
	Namespace string
	// Public is the account's public key (A...), as the server shows it.
	Public string
	// SigningKey is the public key of the account signing key users are
	// signed with.
	SigningKey string
	signer     nkeys.KeyPair
}

// String names the public keys only.
func (acc Account) String() string {
	return fmt.Sprintf("account %s of namespace %s, signing key %s", acc.Public, acc.Namespace, acc.SigningKey)
}

// GoString is String, for %#v.
func (acc Account) GoString() string { return acc.String() }

// derive makes the account key labelled label of namespace. The label keeps
// the identity and the signing key apart; the NUL keeps "a"+"bc" and "ab"+"c"
// apart.
func (a *Authority) derive(label, namespace string) (nkeys.KeyPair, error) {
	mac := hmac.New(sha256.New, a.root)
	mac.Write([]byte("hubflow tenant account/" + label + "\x00" + namespace))
	return nkeys.FromRawSeed(nkeys.PrefixByteAccount, mac.Sum(nil))
}

// Account is namespace's account. It is a pure function of the root secret
// and the namespace: the same on every call, in every process.
func (a *Authority) Account(namespace string) (*Account, error) {
	if namespace == "" {
		return nil, errors.New("a tenant account needs a namespace")
	}
	identity, err := a.derive("identity", namespace)
	if err != nil {
		return nil, fmt.Errorf("deriving the account key of namespace %s: %w", namespace, err)
	}
	defer identity.Wipe()
	signer, err := a.derive("signing", namespace)
	if err != nil {
		return nil, fmt.Errorf("deriving the account signing key of namespace %s: %w", namespace, err)
	}
	pub, _ := identity.PublicKey()
	signerPub, _ := signer.PublicKey()
	return &Account{Namespace: namespace, Public: pub, SigningKey: signerPub, signer: signer}, nil
}

// Wipe forgets the account signing key; the public keys stay.
func (acc *Account) Wipe() { acc.signer.Wipe() }

// JWT is the account's claims, signed with the operator signing key: named
// after the namespace (so the server's monitoring shows whose it is), with
// JetStream under the authority's limits and the one signing key hubflow
// signs users with.
func (a *Authority) JWT(acc *Account) (string, error) {
	claims := jwt.NewAccountClaims(acc.Public)
	claims.Name = acc.Namespace
	claims.Description = "hubflow tenant: the flows of namespace " + acc.Namespace
	claims.SigningKeys.Add(acc.SigningKey)
	claims.Limits.JetStreamLimits = jwt.JetStreamLimits{
		MemoryStorage: a.limits.MemoryStorage, DiskStorage: a.limits.DiskStorage,
		Streams: a.limits.Streams, Consumer: a.limits.Consumers,
	}
	token, err := claims.Encode(a.operator)
	if err != nil {
		return "", fmt.Errorf("signing the account JWT of namespace %s: %w", acc.Namespace, err)
	}
	return token, nil
}

// Issuer mints the namespace's Producer and Consumer users.
func (acc *Account) Issuer(ttl time.Duration) (*credentials.Issuer, error) {
	own, err := acc.signer.Seed()
	if err != nil {
		return nil, err
	}
	// Seed returns the key pair's own bytes: wipe a copy only.
	seed := bytes.Clone(own)
	defer wipe(seed)
	return credentials.NewIssuer(seed, acc.Public, ttl)
}

// ManagerPermissions is what the manager's own user in a tenant account may
// do: the JetStream API (streams and durables are managed there), the
// advisories it repairs drift from, and replies on its inbox. It cannot
// publish on any Topic's subject nor acknowledge any delivery.
var ManagerPermissions = struct{ Publish, Subscribe []string }{
	Publish:   []string{"$JS.API.>"},
	Subscribe: []string{"_INBOX.>", "$JS.EVENT.>"},
}

// ManagerUser mints the manager's user in the account: a fresh key each
// call, no expiry (the key never leaves the manager's memory; re-keying the
// root secret revokes it with the account).
func (acc *Account) ManagerUser(name string) (userJWT, seed string, err error) {
	user, err := nkeys.CreateUser()
	if err != nil {
		return "", "", err
	}
	defer user.Wipe()
	pub, _ := user.PublicKey()
	claims := jwt.NewUserClaims(pub)
	claims.Name = name
	claims.IssuerAccount = acc.Public
	claims.Pub.Allow.Add(ManagerPermissions.Publish...)
	claims.Sub.Allow.Add(ManagerPermissions.Subscribe...)
	if userJWT, err = claims.Encode(acc.signer); err != nil {
		return "", "", fmt.Errorf("signing the manager's user of namespace %s: %w", acc.Namespace, err)
	}
	s, err := user.Seed()
	if err != nil {
		return "", "", err
	}
	return userJWT, string(s), nil // string copies: the deferred Wipe leaves it alone
}

// ClaimsUpdateSubject is where the system account takes account JWTs (the
// NATS-based account resolver, as `nsc push` uses it).
const ClaimsUpdateSubject = "$SYS.REQ.CLAIMS.UPDATE"

// ErrPushRefused wraps a resolver's refusal of an account JWT.
var ErrPushRefused = errors.New("the account resolver refused the account")

// pushGrace is how long Push waits for the rest of a cluster once one
// server has stored the account.
const pushGrace = 2 * time.Second

// Push sends an account JWT to the resolver over sys, a connection of a
// system-account user, and waits until every server the connection knows of
// has stored it (or pushGrace after the first did): every server of a
// cluster answers, and a stream created on one that has not stored the
// account yet fails ("error creating store for stream").
func Push(ctx context.Context, sys *nats.Conn, accountJWT string) error {
	inbox := sys.NewRespInbox()
	replies := make(chan *nats.Msg, 64)
	sub, err := sys.ChanSubscribe(inbox, replies)
	if err != nil {
		return fmt.Errorf("pushing an account: %w", err)
	}
	defer sub.Unsubscribe()
	if err := sys.PublishRequest(ClaimsUpdateSubject, inbox, []byte(accountJWT)); err != nil {
		return fmt.Errorf("pushing an account: %w", err)
	}
	want := max(len(sys.Servers()), 1)
	var grace <-chan time.Time
	stored := 0
	for stored < want {
		select {
		case msg := <-replies:
			if len(msg.Data) == 0 && msg.Header.Get("Status") == "503" {
				return fmt.Errorf("pushing an account: no account resolver answers on %s (the server needs resolver: full, and this connection a system-account user): %w", ClaimsUpdateSubject, nats.ErrNoResponders)
			}
			if err := pushReply(msg.Data); err != nil {
				return err
			}
			stored++
			if grace == nil {
				grace = time.After(pushGrace)
			}
		case <-grace:
			return nil // the first server has it; the others will soon
		case <-ctx.Done():
			if stored > 0 {
				return nil
			}
			return fmt.Errorf("pushing an account: no resolver answered: %w", ctx.Err())
		}
	}
	return nil
}

// pushReply reads one server's answer to an account push.
func pushReply(data []byte) error {
	var reply struct {
		Data *struct {
			Account string `json:"account"`
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"data"`
		Error *struct {
			Account     string `json:"account"`
			Code        int    `json:"code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(data, &reply); err != nil {
		return fmt.Errorf("pushing an account: unreadable resolver reply: %w", err)
	}
	switch {
	case reply.Error != nil:
		return fmt.Errorf("%w %s: %s (code %d)", ErrPushRefused, reply.Error.Account, reply.Error.Description, reply.Error.Code)
	case reply.Data == nil || reply.Data.Code != 200:
		return fmt.Errorf("%w: unexpected reply %q", ErrPushRefused, data)
	}
	return nil
}
