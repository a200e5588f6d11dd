package credentials_test

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/nats-io/nkeys"
)

// secretShapes match secret material whether or not the test saw it.
var secretShapes = []struct {
	what string
	re   *regexp.Regexp
}{
	// A seed is 58 base32 characters: S, the key type, 56 more. A public
	// key is 56 characters, so none can hold a seed's shape.
	{"an nkey seed", regexp.MustCompile(`\bS[OAU][A-Z2-7]{56}\b`)},
	{"a JWT", regexp.MustCompile(`eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}`)},
	{"a credentials file", regexp.MustCompile(`NKEY SEED|NATS USER JWT`)},
	// The same, base64-encoded, as a Secret's data is when printed whole.
	{"a base64-encoded credentials file", regexp.MustCompile(regexp.QuoteMeta(base64.StdEncoding.EncodeToString([]byte("-----BEGIN NATS USER JWT"))))},
}

// hexLine is a line of a hex dump (encoding/hex.Dump), the way client-go
// logs a protobuf request or response body: offset, then up to 16 bytes.
var hexLine = regexp.MustCompile(`[0-9a-f]{8}  ((?:[0-9a-f]{2} {1,2}){1,16})`)

// hexDumped reassembles the bytes of every hex dump in text, so that what
// a dumped body holds is scanned as well.
func hexDumped(text string) string {
	var out []byte
	for _, m := range hexLine.FindAllStringSubmatch(text, -1) {
		if b, err := hex.DecodeString(strings.ReplaceAll(m[1], " ", "")); err == nil {
			out = append(out, b...)
		}
	}
	return string(out)
}

// leaks lists what in text (hex dumps decoded) looks like, or is, a
// secret. The findings name where and what, never the secret itself.
func leaks(text string, known []string) []string {
	text += "\n" + hexDumped(text)
	var found []string
	for _, s := range secretShapes {
		if loc := s.re.FindStringIndex(text); loc != nil {
			found = append(found, fmt.Sprintf("%s at byte %d", s.what, loc[0]))
		}
	}
	for _, k := range known {
		if i := strings.Index(text, k); i >= 0 {
			found = append(found, fmt.Sprintf("a secret value the test handed out (%d characters) at byte %d", len(k), i))
		}
	}
	return found
}

// The scanner must be able to fail: it finds secrets of every shape, and
// keeps quiet about what may be shown (public keys, subjects, URLs).
func TestLeakScannerFindsSecrets(t *testing.T) {
	user, _ := nkeys.CreateUser()
	seed, _ := user.Seed()
	pub, _ := user.PublicKey()
	creds, err := trust.UserCreds("probe", []string{"a"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	token, _ := jwtAndSeed(creds)
	for name, text := range map[string]string{
		"seed":          "key=" + string(seed) + " done",
		"jwt":           `{"jwt":"` + token + `"}`,
		"creds file":    string(creds),
		"base64 creds":  base64.StdEncoding.EncodeToString(creds),
		"known, partly": "…" + token[strings.LastIndex(token, ".")+1:] + "…",
		"hex dump":      `{"msg":"Request Body","body":"` + strings.ReplaceAll(hex.Dump(append([]byte("k8s\x00\n"), creds...)), "\n", `\n`) + `"}`,
	} {
		known := []string{token[strings.LastIndex(token, ".")+1:]}
		if got := leaks(text, known); len(got) == 0 {
			t.Errorf("%s: nothing found", name)
		}
	}
	harmless := fmt.Sprintf("user %s of account %s publishes on $JS.ACK.x.y.> at nats://localhost:4222, expires 2026-11-25T10:00:00Z", pub, trust.AccountKey)
	if got := leaks(harmless, []string{"never-there"}); len(got) > 0 {
		t.Errorf("false alarm on %q: %v", harmless, got)
	}
}
