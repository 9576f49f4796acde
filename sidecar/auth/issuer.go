package auth

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldhq/herald/sidecar/notification"
)

// MaxTokenTTL is the longest lifetime Issue grants a token.
const MaxTokenTTL = 30 * 24 * time.Hour

// Issuer signs HS256 connect tokens. It is safe for concurrent use.
type Issuer struct {
	secret []byte
	now    func() time.Time
}

// NewHS256Issuer returns an Issuer that signs with secret; it keeps its own
// copy. With an empty secret Issue fails.
func NewHS256Issuer(secret []byte) *Issuer {
	return &Issuer{secret: append([]byte(nil), secret...), now: time.Now}
}

// Issue returns a token for userID valid for ttl (0 < ttl <= MaxTokenTTL),
// and its expiry. The token carries sub, iat and exp.
func (is *Issuer) Issue(userID string, ttl time.Duration) (string, time.Time, error) {
	if len(is.secret) == 0 {
		return "", time.Time{}, errors.New("auth: issue token: no secret")
	}
	if err := notification.ValidateUserID(userID); err != nil {
		return "", time.Time{}, fmt.Errorf("auth: issue token: %w", err)
	}
	if ttl <= 0 || ttl > MaxTokenTTL {
		return "", time.Time{}, fmt.Errorf("auth: issue token: ttl %s out of range (0, %s]", ttl, MaxTokenTTL)
	}
	now := is.now()
	exp := now.Add(ttl)
	claims := jwt.RegisteredClaims{
		Subject:   userID,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(exp),
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(is.secret)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("auth: issue token: %w", err)
	}
	// NumericDate truncates to seconds; report what the token says.
	return tok, claims.ExpiresAt.Time, nil
}
