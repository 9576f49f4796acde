package gateway

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/lxzan/gws"

	"github.com/heraldhq/herald/sidecar/auth"
	"github.com/heraldhq/herald/sidecar/metrics"
	"github.com/heraldhq/herald/sidecar/store"
	"github.com/heraldhq/herald/testing/wsclient"
)

func TestHandshakeRefusals(t *testing.T) {
	e := newEnv(t, Options{})
	now := time.Now()
	expired := signed(t, jwt.MapClaims{"sub": "u1", "exp": now.Add(-5 * time.Minute).Unix()})
	otherKey, err := jwt.NewWithClaims(jwt.SigningMethodHS256,
		jwt.MapClaims{"sub": "u1", "exp": now.Add(time.Hour).Unix()}).SignedString([]byte("some-other-secret-0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		opts       wsclient.Options
		wantStatus int
		wantBody   string
	}{
		{"missing token", wsclient.Options{}, 401, "missing token"},
		{"malformed token", wsclient.Options{Token: "not-a-jwt"}, 401, "malformed token"},
		{"expired 5 minutes", wsclient.Options{Token: expired}, 401, "token expired"},
		{"wrong signature", wsclient.Options{Token: otherKey}, 401, "invalid token signature"},
		{"bearer header wrong signature", wsclient.Options{Token: otherKey, TokenInHeader: true}, 401,
			"invalid token signature"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body, err := wsclient.Handshake(e.url, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if status != tc.wantStatus || !strings.Contains(body, tc.wantBody) {
				t.Fatalf("got %d %q, want %d %q", status, body, tc.wantStatus, tc.wantBody)
			}
			if tc.opts.Token != "" && strings.Contains(body, tc.opts.Token) {
				t.Fatal("body echoes the token")
			}
		})
	}
	// The gws client sees the same status.
	_, resp, err := wsclient.Dial(e.url, wsclient.Options{Token: expired})
	if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("gws dial with expired token: resp %v err %v", resp, err)
	}
	if got := counter(t, e.m.Rejects.WithLabelValues(metrics.RejectUnauthorized)); got != float64(len(tests)+1) {
		t.Fatalf("unauthorized rejects = %v, want %d", got, len(tests)+1)
	}
	if got := counter(t, e.m.UnreadSync); got != 0 {
		t.Fatalf("unread_sync sent for refused requests: %v", got)
	}
}

func TestNotAWebSocketRequest(t *testing.T) {
	e := newEnv(t, Options{})
	resp, err := http.Get(e.srv.URL + "/ws?token=" + e.token("u1"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUpgradeRequired {
		t.Fatalf("plain GET: %d, want 426", resp.StatusCode)
	}
	resp, err = http.Post(e.srv.URL+"/ws", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %d, want 405", resp.StatusCode)
	}
}

// TestOriginAllowList is BH-11: exact scheme, host (any case) and port.
func TestOriginAllowList(t *testing.T) {
	e := newEnv(t, Options{AllowedOrigins: []string{"https://app.example.com", "http://localhost:3000"}})
	tests := []struct {
		origin string
		want   int
	}{
		{"https://app.example.com", 101},
		{"https://APP.example.com", 101},
		{"https://app.example.com:443", 101},
		{"http://localhost:3000", 101},
		{"", 101}, // not a browser: accepted (PROTOCOL.md)
		{"https://app.example.com.attacker.test", 403},
		{"https://evilapp.example.com", 403},
		{"http://app.example.com", 403},
		{"https://app.example.com:8443", 403},
		{"null", 403},
		{"https://app.example.com/", 403},
		{"http://localhost:3001", 403},
		{"https://app.example.com@attacker.test", 403},
		{"app.example.com", 403},
	}
	for _, tc := range tests {
		t.Run("origin="+tc.origin, func(t *testing.T) {
			syncs := counter(t, e.m.UnreadSync)
			status, _, err := wsclient.Handshake(e.url, wsclient.Options{Token: e.token("u1"), Origin: tc.origin})
			if err != nil {
				t.Fatal(err)
			}
			if status != tc.want {
				t.Fatalf("status %d, want %d", status, tc.want)
			}
			if tc.want == 403 && counter(t, e.m.UnreadSync) != syncs {
				t.Fatal("a refused origin caused an unread_sync (store read)")
			}
			if tc.want == 101 {
				// Let the accepted socket's sync finish before the next case.
				eventually(t, "unread_sync", func() bool { return counter(t, e.m.UnreadSync) == syncs+1 })
			}
		})
	}
	// Close the accepted handshakes' sockets before the end-of-test checks.
	eventually(t, "accepted probes to end", func() bool { return e.gw.Connections() == 0 })
}

func TestInvalidAllowedOriginsFailNew(t *testing.T) {
	e := newEnv(t, Options{})
	for _, bad := range []string{"*", "https://*.example.com", "null", "app.example.com", "https://a.com/path"} {
		if _, err := New(Options{AllowedOrigins: []string{bad}}, e.st, e.verifier, nil); err == nil {
			t.Errorf("New accepted allowed origin %q", bad)
		}
	}
}

func TestEmptyAllowListWarnsOnce(t *testing.T) {
	e := newEnv(t, Options{})
	if n := strings.Count(e.logs.String(), "no allowed origins configured"); n != 1 {
		t.Fatalf("warning logged %d times, want 1", n)
	}
	status, _, err := wsclient.Handshake(e.url, wsclient.Options{Token: e.token("u1"),
		Origin: "https://anything.test"})
	if err != nil || status != 101 {
		t.Fatalf("status %d, %v; want 101 with an empty allow-list", status, err)
	}
}

// panicStore is the real store whose List panics with the token in the
// message, to check that a recovered panic is logged redacted.
type panicStore struct {
	Store
	token string
}

func (p panicStore) List(store.ListQuery) (store.Page, error) {
	panic("list exploded for token " + p.token)
}

// TestTokensNeverLogged is BH-10: at trace level, across every path a token
// takes, neither a token nor any 12-byte piece of one appears in the logs,
// in metric labels or in a response body.
func TestTokensNeverLogged(t *testing.T) {
	good, _, err := auth.NewHS256Issuer(testSecret).Issue("u1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvWith(t, Options{AllowedOrigins: []string{"https://app.example.com"}}, auth.DefaultLeeway,
		func(st *store.Store) Store { return panicStore{Store: st, token: good} })
	e.allowErrors.Store(true) // the forced panic logs at error level
	expired := signed(t, jwt.MapClaims{"sub": "u1", "exp": time.Now().Add(-time.Hour).Unix()})
	malformed := "malformed-token-that-is-long-enough-to-matter"
	badSig := good[:len(good)-4] + "AAAA"
	tokens := []string{good, expired, malformed, badSig}
	var bodies []string

	// Refusals: expired, malformed, bad signature, refused origin, plain GET.
	for _, tok := range []string{expired, malformed, badSig} {
		_, body, err := wsclient.Handshake(e.url, wsclient.Options{Token: tok})
		if err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, body)
	}
	_, body, err := wsclient.Handshake(e.url, wsclient.Options{Token: good, Origin: "https://evil.test"})
	if err != nil {
		t.Fatal(err)
	}
	bodies = append(bodies, body)
	resp, err := http.Get(e.srv.URL + "/ws?token=" + good)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	bodies = append(bodies, string(b))

	// Success, with client frames of every kind.
	c, _ := e.dial("u1", wsclient.Options{Token: good})
	_ = c.Send(map[string]any{"type": "ping"})
	_ = c.Send(map[string]any{"type": "nope"})
	_ = c.SendRaw(gws.OpcodeText, []byte("{not json"))
	if _, err := c.WaitN(wsclient.Type(frameError), 2, waitTimeout); err != nil {
		t.Fatal(err)
	}
	c.Close()

	// A client dropping in the middle of a large unread_sync.
	e.create("u2", 300)
	tok2 := e.token("u2")
	tokens = append(tokens, tok2)
	drop := e.dialNoSync("u2", wsclient.Options{Token: tok2})
	drop.Kill()

	// A panic inside a client request, with the token in the panic value.
	p := e.dialNoSync("u1", wsclient.Options{Token: good, TokenInHeader: true})
	_ = p.Send(map[string]any{"type": "list"})
	ef, err := p.WaitType(frameError, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	if l := decodeLive(t, ef); l.Code != codeInternal || l.Ref != "list" {
		t.Fatalf("after a panic: error %q ref %q, want internal, list", l.Code, l.Ref)
	}
	eventually(t, "the panic to be logged", func() bool {
		return strings.Contains(e.logs.String(), "websocket handler panic")
	})
	p.Close()
	eventually(t, "sockets to end", func() bool { return e.gw.Connections() == 0 })
	e.shutdown()

	// Gather every metric label value.
	var labels []string
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				labels = append(labels, lp.GetValue())
			}
		}
	}
	outputs := map[string]string{
		"logs":   e.logs.String(),
		"bodies": strings.Join(bodies, "\n"),
		"labels": strings.Join(labels, "\n"),
	}
	if !strings.Contains(outputs["logs"], "[TRACE]") {
		t.Fatal("logs were not captured at trace level")
	}
	for name, out := range outputs {
		for _, tok := range tokens {
			for i := 0; i+12 <= len(tok); i++ {
				if piece := tok[i : i+12]; strings.Contains(out, piece) {
					t.Fatalf("%s contain %q, a piece of a token:\n%s", name, piece, out)
				}
			}
		}
	}
}
