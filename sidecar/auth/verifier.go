// Package auth checks and issues the JWTs that open Herald's WebSocket, keeps
// the HS256 secret file, and is the one place where secrets are redacted from
// text that may reach a log.
//
// Tokens are JWTs whose `sub` is the user ID and whose `exp` is required. A
// Verifier accepts exactly one family of algorithms, chosen by its key: HS256
// for a shared secret, RS256/RS384/RS512 for an RSA key, ES256/ES384/ES512
// for an ECDSA key (by curve), EdDSA for an Ed25519 key. A token signed with
// any other algorithm is refused, which closes the classic "alg confusion"
// hole (an RS256 public key used as an HS256 secret, or alg "none").
package auth

import (
	"errors"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldhq/herald/sidecar/notification"
)

// DefaultLeeway is the recommended clock skew tolerated on exp, nbf and iat.
const DefaultLeeway = 30 * time.Second

// MaxTokenLen bounds the size of a token the Verifier will parse, in bytes.
const MaxTokenLen = 8 << 10

// Errors returned by Verify. Their messages are short, contain nothing of the
// token, and are fit to be sent to the client as the body of an HTTP 401.
var (
	// ErrMissingToken is returned for an empty token.
	ErrMissingToken = errors.New("missing token")
	// ErrMalformed is returned when the token is not a well-formed JWT.
	ErrMalformed = errors.New("malformed token")
	// ErrBadSignature is returned when the signature does not verify, or the
	// token is signed with an algorithm the Verifier does not accept.
	ErrBadSignature = errors.New("invalid token signature")
	// ErrExpired is returned when exp plus the leeway has passed.
	ErrExpired = errors.New("token expired")
	// ErrNotYetValid is returned when nbf or iat lies beyond now plus the leeway.
	ErrNotYetValid = errors.New("token not valid yet")
	// ErrInvalidClaims is returned when sub or exp is missing or sub is not a
	// valid user ID.
	ErrInvalidClaims = errors.New("invalid token claims")
)

// Claims are the facts a verified token establishes.
type Claims struct {
	// UserID is the token's `sub`.
	UserID string
	// ExpiresAt is the token's `exp`, without leeway.
	ExpiresAt time.Time
}

// Verifier checks tokens. It is safe for concurrent use.
type Verifier struct {
	key     any
	methods []string
	leeway  time.Duration
	now     func() time.Time
}

// NewHS256Verifier returns a Verifier for HS256 tokens signed with secret,
// tolerating leeway of clock skew on exp, nbf and iat (a negative leeway is
// taken as zero; pass DefaultLeeway for the recommended 30 s). The secret
// should be at least 32 bytes (RFC 7518 section 3.2); LoadSecretFile and
// LoadOrCreateSecret enforce it. With an empty secret every token is refused.
// The Verifier keeps its own copy of secret.
func NewHS256Verifier(secret []byte, leeway time.Duration) *Verifier {
	return &Verifier{
		key:     append([]byte(nil), secret...),
		methods: []string{jwt.SigningMethodHS256.Alg()},
		leeway:  max(leeway, 0),
		now:     time.Now,
	}
}

// Leeway returns the clock skew the Verifier tolerates. The gateway closes a
// socket once its token's exp plus this leeway has passed.
func (v *Verifier) Leeway() time.Duration { return v.leeway }

// SetClock replaces the Verifier's clock; tests use it to simulate skew. It
// must be called before the Verifier is shared.
func (v *Verifier) SetClock(now func() time.Time) { v.now = now }

// Verify checks token's signature and times and returns its claims. Its
// errors are one of the package's sentinel errors, never the token's text.
// There is no revocation list: a token stays valid until exp (plus leeway),
// and the gateway closes a socket when its token expires.
func (v *Verifier) Verify(token string) (Claims, error) {
	if token == "" {
		return Claims{}, ErrMissingToken
	}
	if len(token) > MaxTokenLen {
		return Claims{}, ErrMalformed
	}
	if hmacKey, ok := v.key.([]byte); ok && len(hmacKey) == 0 {
		return Claims{}, ErrBadSignature
	}
	parser := jwt.NewParser(
		jwt.WithValidMethods(v.methods),
		jwt.WithLeeway(v.leeway),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(v.now),
	)
	var rc jwt.RegisteredClaims
	_, err := parser.ParseWithClaims(token, &rc, func(*jwt.Token) (any, error) { return v.key, nil })
	if err != nil {
		return Claims{}, classify(err)
	}
	if rc.ExpiresAt == nil {
		return Claims{}, ErrInvalidClaims
	}
	if notification.ValidateUserID(rc.Subject) != nil {
		return Claims{}, ErrInvalidClaims
	}
	return Claims{UserID: rc.Subject, ExpiresAt: rc.ExpiresAt.Time}, nil
}

// classify maps a jwt error onto this package's sentinels. The jwt error's
// text is dropped on purpose: some of it echoes decoded token bytes.
func classify(err error) error {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return ErrMalformed
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return ErrBadSignature
	case errors.Is(err, jwt.ErrTokenExpired):
		return ErrExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return ErrNotYetValid
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing), errors.Is(err, jwt.ErrTokenInvalidClaims):
		return ErrInvalidClaims
	default:
		return ErrMalformed
	}
}
