package auth

import (
	"crypto/sha256"
	"encoding/hex"
	"log"
	"net/url"
	"regexp"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// Redacted replaces a secret in redacted text.
const Redacted = "[REDACTED]"

// sensitiveParams are the query parameters whose values RedactURL hides,
// compared case-insensitively.
var sensitiveParams = map[string]bool{
	"token": true, "access_token": true, "id_token": true, "jwt": true,
	"auth": true, "authorization": true, "key": true, "secret": true, "password": true,
}

var (
	// jwtPattern matches a JWT (its header is base64url of `{"`, so "eyJ"),
	// and anything else shaped like three long base64url segments joined by
	// dots; short dotted words such as host names are left alone.
	jwtPattern = regexp.MustCompile(
		`eyJ[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]*\.?[A-Za-z0-9_-]*|` +
			`[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}`)
	// paramPattern matches sensitive key=value pairs in query strings,
	// form bodies and log text.
	paramPattern = regexp.MustCompile(
		`(?i)\b(token|access_token|id_token|jwt|auth|authorization|key|secret|password)=[^&\s"'<>;,]*`)
	// bearerPattern matches an Authorization header value or its scheme.
	bearerPattern = regexp.MustCompile(`(?i)\b(bearer|basic)\s+[^\s"',;]+`)
	// headerPattern matches an Authorization or Cookie header line.
	headerPattern = regexp.MustCompile(`(?i)\b(authorization|cookie|set-cookie):\s*[^\r\n]*`)
)

// Fingerprint returns a short, stable, non-reversible name for a token: the
// first 8 hex characters of its SHA-256. Logs may carry it; never the token.
func Fingerprint(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:4])
}

// RedactURL returns u as text with the values of sensitive query parameters
// (token, access_token, jwt, key, ...) and any user-info password replaced by
// Redacted. A nil u gives "".
func RedactURL(u *url.URL) string {
	if u == nil {
		return ""
	}
	c := *u
	if c.User != nil {
		c.User = url.User(c.User.Username())
		if _, has := u.User.Password(); has {
			c.User = url.UserPassword(c.User.Username(), Redacted)
		}
	}
	if c.RawQuery != "" {
		c.RawQuery = redactQuery(c.RawQuery)
	}
	return Redact(c.String())
}

// redactQuery hides the values of sensitive parameters, keeping the others
// and their order.
func redactQuery(raw string) string {
	parts := strings.Split(raw, "&")
	for i, p := range parts {
		k, _, _ := strings.Cut(p, "=")
		if name, err := url.QueryUnescape(k); err == nil && sensitiveParams[strings.ToLower(name)] {
			parts[i] = k + "=" + url.QueryEscape(Redacted)
		}
	}
	return strings.Join(parts, "&")
}

// Redact returns s with everything that looks like a credential replaced by
// Redacted: JWT-shaped strings, sensitive key=value pairs, Bearer/Basic
// credentials, and Authorization/Cookie header lines. It is meant for text
// Herald does not control (library errors, panics) before it is logged.
func Redact(s string) string {
	s = headerPattern.ReplaceAllString(s, "${1}: "+Redacted)
	s = bearerPattern.ReplaceAllString(s, "${1} "+Redacted)
	s = paramPattern.ReplaceAllString(s, "${1}="+Redacted)
	return jwtPattern.ReplaceAllString(s, Redacted)
}

// RedactingLogger returns a *log.Logger for http.Server.ErrorLog (and other
// standard-library loggers) that passes every line through Redact and writes
// it to l: panics at error level, accept errors at warn, the rest (TLS
// handshake noise, bad requests) at debug. It never writes to stdout.
func RedactingLogger(l hclog.Logger) *log.Logger {
	if l == nil {
		l = hclog.NewNullLogger()
	}
	return log.New(redactWriter{l}, "", 0)
}

type redactWriter struct{ l hclog.Logger }

func (w redactWriter) Write(p []byte) (int, error) {
	msg := Redact(strings.TrimRight(string(p), "\r\n"))
	switch {
	case strings.Contains(msg, "panic"):
		w.l.Error("http server", "message", msg)
	case strings.Contains(msg, "Accept error"):
		w.l.Warn("http server", "message", msg)
	default:
		w.l.Debug("http server", "message", msg)
	}
	return len(p), nil
}
