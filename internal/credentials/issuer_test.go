package credentials

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"github.com/hubflow/hubflow/internal/semantic"
)

type keys struct {
	account, signing nkeys.KeyPair
	accountPub       string
	signingSeed      []byte
}

func newKeys(t *testing.T) keys {
	t.Helper()
	acc, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatal(err)
	}
	sk, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := acc.PublicKey()
	seed, _ := sk.Seed()
	return keys{account: acc, signing: sk, accountPub: pub, signingSeed: append([]byte(nil), seed...)}
}

var perms = semantic.Permissions{
	Publish:   []string{"shop.payments", "shop.payments.>"},
	Subscribe: []string{"_INBOX_shop_producer_checkout.>"},
}

func TestIssueSignsAUserOfTheAccountWithExactlyTheGivenPermissions(t *testing.T) {
	k := newKeys(t)
	iss, err := NewIssuer(k.signingSeed, k.accountPub, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 25, 10, 0, 0, 500, time.UTC)
	got, err := iss.Issue("hubflow producer shop/checkout", perms, now)
	if err != nil {
		t.Fatal(err)
	}
	token, _ := jwt.ParseDecoratedJWT(got.Creds)
	claims, err := jwt.DecodeUserClaims(token)
	if err != nil {
		t.Fatal(err)
	}
	signingPub, _ := k.signing.PublicKey()
	switch {
	case claims.Issuer != signingPub:
		t.Errorf("issuer %s, want the signing key %s", claims.Issuer, signingPub)
	case claims.IssuerAccount != k.accountPub:
		t.Errorf("issuer_account %s, want the account %s", claims.IssuerAccount, k.accountPub)
	case claims.Subject != got.User:
		t.Errorf("subject %s, reported user %s", claims.Subject, got.User)
	case claims.Name != "hubflow producer shop/checkout":
		t.Errorf("name %q", claims.Name)
	case !got.Expires.Equal(now.Add(time.Hour).Truncate(time.Second)) || claims.Expires != got.Expires.Unix():
		t.Errorf("expires %v (claims %d), want an hour from %v", got.Expires, claims.Expires, now)
	case !perms.Equal(semantic.Permissions{Publish: claims.Pub.Allow, Subscribe: claims.Sub.Allow}):
		t.Errorf("permissions %+v %+v", claims.Pub, claims.Sub)
	case len(claims.Pub.Deny)+len(claims.Sub.Deny) > 0 || claims.Resp != nil || claims.BearerToken:
		t.Errorf("unexpected grants: %+v", claims.Permissions)
	}
	user, err := jwt.ParseDecoratedUserNKey(got.Creds)
	if err != nil {
		t.Fatal(err)
	}
	if pub, _ := user.PublicKey(); pub != got.User {
		t.Errorf("the seed belongs to %s, not to the user %s", pub, got.User)
	}

	// Two issues are two users.
	again, err := iss.Issue("hubflow producer shop/checkout", perms, now)
	if err != nil {
		t.Fatal(err)
	}
	if again.User == got.User {
		t.Error("each issue must mint a new user key")
	}
}

func TestTheAccountKeyItselfSignsWithoutIssuerAccount(t *testing.T) {
	k := newKeys(t)
	seed, _ := k.account.Seed()
	iss, err := NewIssuer(seed, k.accountPub, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	got, err := iss.Issue("u", perms, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	token, _ := jwt.ParseDecoratedJWT(got.Creds)
	claims, _ := jwt.DecodeUserClaims(token)
	if claims.Issuer != k.accountPub || claims.IssuerAccount != "" {
		t.Errorf("issuer %s issuer_account %q", claims.Issuer, claims.IssuerAccount)
	}
	if _, stale := iss.Check(got.Creds, "u", perms, time.Now()); stale != Fresh {
		t.Errorf("Check = %q", stale)
	}
}

func TestCheckKeepsOnlyWhatIssueWouldStillHandOut(t *testing.T) {
	k := newKeys(t)
	const ttl = 30 * time.Minute
	iss, err := NewIssuer(k.signingSeed, k.accountPub, ttl)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	issued, err := iss.Issue("hubflow consumer shop/ledger", perms, now)
	if err != nil {
		t.Fatal(err)
	}
	other := newKeys(t)
	otherSigner, _ := NewIssuer(other.signingSeed, k.accountPub, ttl)
	otherAccount, _ := NewIssuer(k.signingSeed, other.accountPub, ttl)
	longer, _ := NewIssuer(k.signingSeed, k.accountPub, 3*ttl)
	fromLonger, _ := longer.Issue("hubflow consumer shop/ledger", perms, now)
	narrower := semantic.Permissions{Publish: perms.Publish[:1], Subscribe: perms.Subscribe}
	tampered := tamper(t, issued.Creds)

	tests := []struct {
		name   string
		issuer *Issuer
		creds  []byte
		user   string
		perms  semantic.Permissions
		now    time.Time
		want   Stale
	}{
		{"fresh", iss, issued.Creds, "hubflow consumer shop/ledger", perms, now, Fresh},
		{"fresh until two thirds of the TTL", iss, issued.Creds, "hubflow consumer shop/ledger", perms, now.Add(ttl*2/3 - 2*time.Second), Fresh},
		{"due at two thirds of the TTL", iss, issued.Creds, "hubflow consumer shop/ledger", perms, now.Add(ttl * 2 / 3), Expiring},
		{"expired", iss, issued.Creds, "hubflow consumer shop/ledger", perms, now.Add(2 * ttl), Expiring},
		{"missing", iss, nil, "hubflow consumer shop/ledger", perms, now, Missing},
		{"garbage", iss, []byte("not a creds file"), "hubflow consumer shop/ledger", perms, now, Unreadable},
		{"tampered permissions", iss, tampered, "hubflow consumer shop/ledger", perms, now, Unreadable},
		{"scope narrowed", iss, issued.Creds, "hubflow consumer shop/ledger", narrower, now, ScopeChanged},
		{"another object", iss, issued.Creds, "hubflow consumer shop/other", perms, now, NameChanged},
		{"signing key replaced", otherSigner, issued.Creds, "hubflow consumer shop/ledger", perms, now, OtherSigner},
		{"another account", otherAccount, issued.Creds, "hubflow consumer shop/ledger", perms, now, OtherSigner},
		{"TTL lowered since", iss, fromLonger.Creds, "hubflow consumer shop/ledger", perms, now, LongerThanTTL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, stale := tt.issuer.Check(tt.creds, tt.user, tt.perms, tt.now)
			if stale != tt.want {
				t.Fatalf("Check = %q, want %q", stale, tt.want)
			}
			if stale == Fresh && (got.User != issued.User || !got.Expires.Equal(issued.Expires) || string(got.Creds) != string(issued.Creds)) {
				t.Errorf("Check kept %v, want %v", got, issued)
			}
		})
	}
}

// tamper widens the JWT's publish permission without re-signing it.
func tamper(t *testing.T, creds []byte) []byte {
	t.Helper()
	token, _ := jwt.ParseDecoratedJWT(creds)
	claims, err := jwt.DecodeUserClaims(token)
	if err != nil {
		t.Fatal(err)
	}
	claims.Pub.Allow.Add(">")
	forger, _ := nkeys.CreateAccount()
	forged, err := claims.Encode(forger)
	if err != nil {
		t.Fatal(err)
	}
	parts, orig := strings.Split(forged, "."), strings.Split(token, ".")
	// The forged payload names the forger as issuer; keep the original
	// header and signature around a payload that claims more.
	mixed := orig[0] + "." + parts[1] + "." + orig[2]
	return []byte(strings.Replace(string(creds), token, mixed, 1))
}

func TestLoadIssuerReadsBareAndDecoratedSeeds(t *testing.T) {
	k := newKeys(t)
	dir := t.TempDir()
	bare := filepath.Join(dir, "bare.nk")
	decorated := filepath.Join(dir, "decorated.nk")
	if err := os.WriteFile(bare, append(append([]byte(nil), k.signingSeed...), '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	text := fmt.Sprintf("-----BEGIN ACCOUNT NKEY SEED-----\n%s\n------END ACCOUNT NKEY SEED------\n", k.signingSeed)
	// ParseDecoratedNKey takes the second decorated block as the seed, as
	// in a creds file; an nsc key export holds the seed alone.
	text = "-----BEGIN NATS ACCOUNT JWT-----\nx\n------END NATS ACCOUNT JWT------\n" + text
	if err := os.WriteFile(decorated, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	signingPub, _ := k.signing.PublicKey()
	for _, f := range []string{bare, decorated} {
		iss, err := LoadIssuer(f, k.accountPub, time.Hour)
		if err != nil {
			t.Fatalf("%s: %v", filepath.Base(f), err)
		}
		if iss.SigningKey() != signingPub || iss.Account() != k.accountPub || iss.TTL() != time.Hour {
			t.Errorf("%s: %v", filepath.Base(f), iss)
		}
	}
}

func TestBadKeysAreRefusedWithoutEchoingThem(t *testing.T) {
	k := newKeys(t)
	user, _ := nkeys.CreateUser()
	userSeed, _ := user.Seed()
	tests := []struct {
		name    string
		seed    []byte
		account string
		ttl     time.Duration
		want    string
	}{
		{"user seed", userSeed, k.accountPub, time.Hour, "not an account key"},
		{"no seed", []byte("hello"), k.accountPub, time.Hour, "no account seed"},
		{"account is a seed", k.signingSeed, string(k.signingSeed), time.Hour, "account public key"},
		{"account is a user", k.signingSeed, func() string { p, _ := user.PublicKey(); return p }(), time.Hour, "account public key"},
		{"no ttl", k.signingSeed, k.accountPub, 0, "TTL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewIssuer(tt.seed, tt.account, tt.ttl)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
			for _, secret := range [][]byte{k.signingSeed, userSeed} {
				if strings.Contains(err.Error(), string(secret)) {
					t.Errorf("the error reveals a seed: %v", err)
				}
			}
		})
	}
	if _, err := LoadIssuer(filepath.Join(t.TempDir(), "missing"), k.accountPub, time.Hour); err == nil {
		t.Error("a missing file must be an error")
	}
}

func TestPrintingRevealsNoSecret(t *testing.T) {
	k := newKeys(t)
	iss, err := NewIssuer(k.signingSeed, k.accountPub, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	issued, err := iss.Issue("u", perms, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	token, _ := jwt.ParseDecoratedJWT(issued.Creds)
	userSeed := strings.TrimSpace(strings.Split(strings.Split(string(issued.Creds), "-----BEGIN USER NKEY SEED-----")[1], "------END")[0])
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		for _, v := range []any{iss, issued, *iss} {
			out := fmt.Sprintf(format, v)
			for _, secret := range []string{string(k.signingSeed), fmt.Sprint(k.signingSeed)[1:40], token, userSeed} {
				if strings.Contains(out, secret) {
					t.Errorf("Sprintf(%q, %T) reveals a secret: %s", format, v, out)
				}
			}
		}
	}
}
