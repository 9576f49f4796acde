package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// minRSABits is the smallest RSA modulus NewPublicKeyVerifier accepts.
const minRSABits = 2048

// NewPublicKeyVerifier returns a Verifier for tokens signed with the private
// half of the PEM-encoded public key in pemBytes ("PUBLIC KEY", "RSA PUBLIC
// KEY" or "CERTIFICATE"). The algorithms accepted follow from the key type:
// RSA (at least 2048 bits) accepts RS256, RS384 and RS512; ECDSA accepts the
// one ES algorithm of its curve (P-256 ES256, P-384 ES384, P-521 ES512);
// Ed25519 accepts EdDSA. HS256 is never accepted, so the public key cannot
// be abused as an HMAC secret. leeway is as for NewHS256Verifier.
func NewPublicKeyVerifier(pemBytes []byte, leeway time.Duration) (*Verifier, error) {
	key, err := parsePublicKey(pemBytes)
	if err != nil {
		return nil, fmt.Errorf("auth: public key: %w", err)
	}
	v := &Verifier{key: key, leeway: max(leeway, 0), now: time.Now}
	switch k := key.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return nil, fmt.Errorf("auth: public key: RSA key of %d bits, at least %d required",
				k.N.BitLen(), minRSABits)
		}
		v.methods = []string{"RS256", "RS384", "RS512"}
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			v.methods = []string{jwt.SigningMethodES256.Alg()}
		case elliptic.P384():
			v.methods = []string{jwt.SigningMethodES384.Alg()}
		case elliptic.P521():
			v.methods = []string{jwt.SigningMethodES512.Alg()}
		default:
			return nil, errors.New("auth: public key: unsupported ECDSA curve")
		}
	case ed25519.PublicKey:
		v.methods = []string{jwt.SigningMethodEdDSA.Alg()}
	default:
		return nil, fmt.Errorf("auth: public key: unsupported key type %T", key)
	}
	return v, nil
}

// parsePublicKey decodes the first PEM block of b into a public key.
func parsePublicKey(b []byte) (any, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("no PEM block found")
	}
	switch block.Type {
	case "PUBLIC KEY":
		return x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		return x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		return cert.PublicKey, nil
	default:
		return nil, fmt.Errorf("PEM block of type %q is not a public key", block.Type)
	}
}
