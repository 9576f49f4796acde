package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef")

// sign returns a token with the given claims signed by method and key.
func sign(tb testing.TB, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	tb.Helper()
	tok, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		tb.Fatalf("sign: %v", err)
	}
	return tok
}

func pemOf(tb testing.TB, pub any) []byte {
	tb.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		tb.Fatalf("marshal: %v", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func TestHS256Verify(t *testing.T) {
	now := time.Unix(1_900_000_000, 0)
	v := NewHS256Verifier(testSecret, 30*time.Second)
	v.SetClock(func() time.Time { return now })
	at := func(d time.Duration) int64 { return now.Add(d).Unix() }
	tests := []struct {
		name   string
		token  string
		want   error
		userID string
	}{
		{"valid", sign(t, jwt.SigningMethodHS256, testSecret,
			jwt.MapClaims{"sub": "u1", "exp": at(time.Hour), "iat": at(0)}), nil, "u1"},
		{"expired inside leeway", sign(t, jwt.SigningMethodHS256, testSecret,
			jwt.MapClaims{"sub": "u1", "exp": at(-20 * time.Second)}), nil, "u1"},
		{"expired 5 minutes", sign(t, jwt.SigningMethodHS256, testSecret,
			jwt.MapClaims{"sub": "u1", "exp": at(-5 * time.Minute)}), ErrExpired, ""},
		{"signer clock +3s", sign(t, jwt.SigningMethodHS256, testSecret,
			jwt.MapClaims{"sub": "u1", "exp": at(time.Minute), "iat": at(3 * time.Second),
				"nbf": at(3 * time.Second)}), nil, "u1"},
		{"signer clock -3s", sign(t, jwt.SigningMethodHS256, testSecret,
			jwt.MapClaims{"sub": "u1", "exp": at(time.Minute), "iat": at(-3 * time.Second),
				"nbf": at(-3 * time.Second)}), nil, "u1"},
		{"nbf beyond leeway", sign(t, jwt.SigningMethodHS256, testSecret,
			jwt.MapClaims{"sub": "u1", "exp": at(time.Hour), "nbf": at(time.Minute)}), ErrNotYetValid, ""},
		{"iat beyond leeway", sign(t, jwt.SigningMethodHS256, testSecret,
			jwt.MapClaims{"sub": "u1", "exp": at(time.Hour), "iat": at(time.Minute)}), ErrNotYetValid, ""},
		{"no exp", sign(t, jwt.SigningMethodHS256, testSecret,
			jwt.MapClaims{"sub": "u1"}), ErrInvalidClaims, ""},
		{"no sub", sign(t, jwt.SigningMethodHS256, testSecret,
			jwt.MapClaims{"exp": at(time.Hour)}), ErrInvalidClaims, ""},
		{"sub too long", sign(t, jwt.SigningMethodHS256, testSecret,
			jwt.MapClaims{"sub": strings.Repeat("x", 129), "exp": at(time.Hour)}), ErrInvalidClaims, ""},
		{"wrong secret", sign(t, jwt.SigningMethodHS256, []byte("another-secret-another-secret-xx"),
			jwt.MapClaims{"sub": "u1", "exp": at(time.Hour)}), ErrBadSignature, ""},
		{"HS512 refused", sign(t, jwt.SigningMethodHS512, testSecret,
			jwt.MapClaims{"sub": "u1", "exp": at(time.Hour)}), ErrBadSignature, ""},
		{"alg none", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType,
			jwt.MapClaims{"sub": "u1", "exp": at(time.Hour)}), ErrBadSignature, ""},
		{"empty", "", ErrMissingToken, ""},
		{"garbage", "not-a-token", ErrMalformed, ""},
		{"two dots garbage", "a.b.c", ErrMalformed, ""},
		{"huge", strings.Repeat("a", MaxTokenLen+1), ErrMalformed, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := v.Verify(tc.token)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify err = %v, want %v", err, tc.want)
			}
			if err == nil && c.UserID != tc.userID {
				t.Fatalf("UserID = %q, want %q", c.UserID, tc.userID)
			}
			if err != nil && tc.token != "" && strings.Contains(err.Error(), tc.token) {
				t.Fatalf("error text contains the token")
			}
		})
	}
}

func TestPublicKeyVerifiers(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edPub, edPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	claims := jwt.MapClaims{"sub": "u7", "exp": time.Now().Add(time.Hour).Unix()}
	rsaPEM := pemOf(t, &rsaKey.PublicKey)
	tests := []struct {
		name    string
		pem     []byte
		token   string
		wantErr error
	}{
		{"RS256", rsaPEM, sign(t, jwt.SigningMethodRS256, rsaKey, claims), nil},
		{"ES256", pemOf(t, &ecKey.PublicKey), sign(t, jwt.SigningMethodES256, ecKey, claims), nil},
		{"EdDSA", pemOf(t, edPub), sign(t, jwt.SigningMethodEdDSA, edPriv, claims), nil},
		// Alg confusion: the attacker knows the public key and signs HS256 with its PEM.
		{"HS256 with RSA public key as secret", rsaPEM,
			sign(t, jwt.SigningMethodHS256, rsaPEM, claims), ErrBadSignature},
		{"ES256 token against RSA key", rsaPEM, sign(t, jwt.SigningMethodES256, ecKey, claims), ErrBadSignature},
		{"PS256 refused", rsaPEM, sign(t, jwt.SigningMethodPS256, rsaKey, claims), ErrBadSignature},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := NewPublicKeyVerifier(tc.pem, DefaultLeeway)
			if err != nil {
				t.Fatalf("NewPublicKeyVerifier: %v", err)
			}
			c, err := v.Verify(tc.token)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Verify err = %v, want %v", err, tc.wantErr)
			}
			if err == nil && c.UserID != "u7" {
				t.Fatalf("UserID = %q", c.UserID)
			}
		})
	}
}

func TestPublicKeyVerifierRejectsBadKeys(t *testing.T) {
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{
		"not PEM":     []byte("hello"),
		"private key": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2}}),
		"RSA 1024":    pemOf(t, &small.PublicKey),
	} {
		if _, err := NewPublicKeyVerifier(b, 0); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestIssuerRoundTrip(t *testing.T) {
	is := NewHS256Issuer(testSecret)
	tok, exp, err := is.Issue("user-1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewHS256Verifier(testSecret, DefaultLeeway).Verify(tok)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if c.UserID != "user-1" || !c.ExpiresAt.Equal(exp) {
		t.Fatalf("claims = %+v, exp %v", c, exp)
	}
	for _, bad := range []struct {
		user string
		ttl  time.Duration
	}{{"", time.Minute}, {"u", 0}, {"u", MaxTokenTTL + time.Second}, {strings.Repeat("u", 200), time.Minute}} {
		if _, _, err := is.Issue(bad.user, bad.ttl); err == nil {
			t.Errorf("Issue(%q, %s) succeeded", bad.user, bad.ttl)
		}
	}
	if _, _, err := NewHS256Issuer(nil).Issue("u", time.Minute); err == nil {
		t.Error("Issue without secret succeeded")
	}
	if _, err := NewHS256Verifier(nil, 0).Verify(tok); !errors.Is(err, ErrBadSignature) {
		t.Errorf("empty-secret verifier: %v", err)
	}
}

// FuzzVerify feeds arbitrary tokens to the verifier: it must never panic and
// never echo the token in its error.
func FuzzVerify(f *testing.F) {
	good := sign(f, jwt.SigningMethodHS256, testSecret,
		jwt.MapClaims{"sub": "u1", "exp": time.Now().Add(time.Hour).Unix()})
	for _, s := range []string{good, "", "a.b.c", "eyJhbGciOiJub25lIn0.e30.", good[:len(good)-3],
		"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOjF9.x", strings.Replace(good, ".", "..", 1)} {
		f.Add(s)
	}
	v := NewHS256Verifier(testSecret, DefaultLeeway)
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := v.Verify(tok)
		if err == nil && c.UserID == "" {
			t.Fatal("accepted token without user")
		}
		if err != nil && len(tok) >= 12 && strings.Contains(err.Error(), tok) {
			t.Fatal("error echoes token")
		}
	})
}
