package testnats

import (
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// Trust is the key hierarchy of a server in operator (JWT) mode, made up on
// the spot the way an administrator makes it with nsc: an operator, a system
// account, and one application account with JetStream and an account
// signing key. Everything in it is a test secret.
type Trust struct {
	Operator nkeys.KeyPair
	System   nkeys.KeyPair
	Account  nkeys.KeyPair
	// AccountKey is the application account's public key.
	AccountKey string
	// SigningKey is an (unscoped) signing key the account JWT lists; its
	// seed is what the hubflow manager is given.
	SigningKey nkeys.KeyPair
	// OperatorSigningKey is a signing key the operator JWT lists: what a
	// manager that creates tenant accounts is given.
	OperatorSigningKey nkeys.KeyPair

	operatorJWT, systemJWT, accountJWT string
}

// NewTrust makes an operator, its system account and an application account
// with unlimited JetStream and one signing key.
func NewTrust() (*Trust, error) {
	t := &Trust{}
	var err error
	for _, k := range []struct {
		kp     *nkeys.KeyPair
		create func() (nkeys.KeyPair, error)
	}{
		{&t.Operator, nkeys.CreateOperator},
		{&t.System, nkeys.CreateAccount},
		{&t.Account, nkeys.CreateAccount},
		{&t.SigningKey, nkeys.CreateAccount},
		{&t.OperatorSigningKey, nkeys.CreateOperator},
	} {
		if *k.kp, err = k.create(); err != nil {
			return nil, err
		}
	}
	opPub, _ := t.Operator.PublicKey()
	sysPub, _ := t.System.PublicKey()
	t.AccountKey, _ = t.Account.PublicKey()
	skPub, _ := t.SigningKey.PublicKey()

	op := jwt.NewOperatorClaims(opPub)
	op.Name = "hubflow-test"
	op.SystemAccount = sysPub
	opSigningPub, _ := t.OperatorSigningKey.PublicKey()
	op.SigningKeys.Add(opSigningPub)
	if t.operatorJWT, err = op.Encode(t.Operator); err != nil {
		return nil, fmt.Errorf("operator JWT: %w", err)
	}
	sys := jwt.NewAccountClaims(sysPub)
	sys.Name = "SYS"
	if t.systemJWT, err = sys.Encode(t.Operator); err != nil {
		return nil, fmt.Errorf("system account JWT: %w", err)
	}
	acc := jwt.NewAccountClaims(t.AccountKey)
	acc.Name = "HUBFLOW"
	acc.SigningKeys.Add(skPub)
	acc.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
	if t.accountJWT, err = acc.Encode(t.Operator); err != nil {
		return nil, fmt.Errorf("account JWT: %w", err)
	}
	return t, nil
}

// SigningSeed is the account signing key's seed, as the file an
// administrator mounts into the manager.
func (t *Trust) SigningSeed() []byte {
	seed, _ := t.SigningKey.Seed()
	return append([]byte(nil), seed...)
}

// OperatorSigningSeed is the operator signing key's seed.
func (t *Trust) OperatorSigningSeed() []byte {
	seed, _ := t.OperatorSigningKey.Seed()
	return append([]byte(nil), seed...)
}

// SystemUserCreds mints an unrestricted user of the system account, the
// kind that pushes account JWTs to the resolver.
func (t *Trust) SystemUserCreds(name string) ([]byte, error) {
	return userCreds(t.System, name, nil, nil)
}

// UserCreds mints a user of the application account, signed with the
// account's own key (as an administrator does with nsc), with pub and sub
// as allow lists; none means no restriction.
func (t *Trust) UserCreds(name string, pub, sub []string) ([]byte, error) {
	return userCreds(t.Account, name, pub, sub)
}

func userCreds(account nkeys.KeyPair, name string, pub, sub []string) ([]byte, error) {
	user, err := nkeys.CreateUser()
	if err != nil {
		return nil, err
	}
	userPub, _ := user.PublicKey()
	claims := jwt.NewUserClaims(userPub)
	claims.Name = name
	claims.Pub.Allow.Add(pub...)
	claims.Sub.Allow.Add(sub...)
	token, err := claims.Encode(account)
	if err != nil {
		return nil, err
	}
	seed, _ := user.Seed()
	return jwt.FormatUserConfig(token, seed)
}

// StartOperatorMode runs a JetStream server on 127.0.0.1 that trusts only
// t's operator and resolves accounts with the full NATS resolver (a
// directory of account JWTs under dir, kept in sync through the system
// account), preloaded with t's two accounts as `nsc push` would.
func StartOperatorMode(dir string, t *Trust) (*Server, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	s := &Server{opts: &server.Options{
		ServerName: fmt.Sprintf("hub-%d", port),
		Host:       "127.0.0.1", Port: port,
		JetStream: true, StoreDir: filepath.Join(dir, "js"),
		NoSigs: true, NoLog: true,
	}}
	if err := t.operatorMode(s, filepath.Join(dir, "jwt")); err != nil {
		return nil, err
	}
	return s, s.start()
}

// operatorMode makes s trust only t's operator, with the full resolver over
// jwtDir preloaded with t's two accounts.
func (t *Trust) operatorMode(s *Server, jwtDir string) error {
	op, err := jwt.DecodeOperatorClaims(t.operatorJWT)
	if err != nil {
		return err
	}
	sysPub, _ := t.System.PublicKey()
	if err := os.MkdirAll(jwtDir, 0o700); err != nil {
		return err
	}
	s.opts.TrustedOperators = []*jwt.OperatorClaims{op}
	s.opts.SystemAccount = sysPub
	// A resolver is closed when its server shuts down, so every (re)start
	// gets a new one over the same directory.
	s.resolver = func() (server.AccountResolver, error) {
		// A lone server has no peer to fetch an unknown account from:
		// give up on one quickly.
		r, err := server.NewDirAccResolver(jwtDir, 0, time.Minute, server.NoDelete, server.FetchTimeout(200*time.Millisecond))
		if err != nil {
			return nil, err
		}
		for _, acc := range []struct{ pub, jwt string }{{sysPub, t.systemJWT}, {t.AccountKey, t.accountJWT}} {
			if err := r.Store(acc.pub, acc.jwt); err != nil {
				return nil, err
			}
		}
		return r, nil
	}
	return nil
}

// UserJWTAndSeed is the login of a credentials file, as an option.
func UserJWTAndSeed(tb testing.TB, creds []byte) nats.Option {
	tb.Helper()
	token, err := jwt.ParseDecoratedJWT(creds)
	if err != nil {
		tb.Fatal(err)
	}
	kp, err := jwt.ParseDecoratedUserNKey(creds)
	if err != nil {
		tb.Fatal(err)
	}
	defer kp.Wipe()
	seed, _ := kp.Seed()
	return nats.UserJWTAndSeed(token, string(seed))
}

// ConnectCreds connects to url as the user of creds, closed at the test's end.
func ConnectCreds(tb testing.TB, url string, creds []byte, opts ...nats.Option) *nats.Conn {
	tb.Helper()
	nc, err := nats.Connect(url, append(opts, UserJWTAndSeed(tb, creds))...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	return nc
}

// TenancyHub is an operator-mode server (StartOperatorMode) with the files a
// platform team mounts into a manager with --tenancy=namespace: a
// system-account user's credentials, the operator signing key's seed and
// a random root secret.
type TenancyHub struct {
	*Server
	Trust                       *Trust
	SysCreds, OperatorKey, Root string // file paths
}

// StartTenancyHub starts a TenancyHub in the test's temp dir, stopped at
// the test's end.
func StartTenancyHub(tb testing.TB) *TenancyHub {
	tb.Helper()
	trust, err := NewTrust()
	if err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	srv, err := StartOperatorMode(filepath.Join(dir, "hub"), trust)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(srv.Stop)
	creds, err := trust.SystemUserCreds("hubflow-manager")
	if err != nil {
		tb.Fatal(err)
	}
	secret := make([]byte, 48)
	if _, err := rand.Read(secret); err != nil {
		tb.Fatal(err)
	}
	h := &TenancyHub{Server: srv, Trust: trust,
		SysCreds: filepath.Join(dir, "sys.creds"), OperatorKey: filepath.Join(dir, "operator.nk"), Root: filepath.Join(dir, "root")}
	for path, data := range map[string][]byte{h.SysCreds: creds, h.OperatorKey: trust.OperatorSigningSeed(), h.Root: secret} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			tb.Fatal(err)
		}
	}
	return h
}
