package daemon_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldhq/herald/plugin/heraldv1"
	"github.com/heraldhq/herald/sidecar/config"
	"github.com/heraldhq/herald/testing/heraldtest"
	"github.com/heraldhq/herald/testing/wsclient"
)

// waitTimeout is the generous deadline of every wait in these tests.
const waitTimeout = 20 * time.Second

// TestPublicKeyFileVerifiesEdDSATokens: a Herald started with
// --jwt-public-key-file holding an Ed25519 PEM key accepts a WebSocket
// whose EdDSA token was signed by the matching private key (it gets the
// user's unread_sync), and refuses an HS256 token with HTTP 401 before the
// upgrade, even one keyed with the public key file's bytes.
func TestPublicKeyFileVerifiesEdDSATokens(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	var pemBytes bytes.Buffer
	if err := pem.Encode(&pemBytes, &pem.Block{Type: "PUBLIC KEY", Bytes: der}); err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "jwt-public.pem")
	if err := os.WriteFile(keyFile, pemBytes.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}

	n := heraldtest.Start(t, heraldtest.Options{Configure: func(c *config.Config) {
		c.JWTPublicKeyFile = keyFile
	}})
	n.WaitReady(waitTimeout)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	created, err := n.RPC.CreateNotifications(ctx, &heraldv1.CreateNotificationsRequest{
		Notifications: []*heraldv1.NewNotification{{UserId: "u1", Type: "test", Title: "hello"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	wsURL := "ws://" + n.HTTPAddr + "/ws"
	claims := jwt.MapClaims{"sub": "u1", "exp": time.Now().Add(time.Hour).Unix()}

	// EdDSA, signed by the private half: accepted as u1.
	edTok, err := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims).SignedString(priv)
	if err != nil {
		t.Fatal(err)
	}
	c, _, err := wsclient.Dial(wsURL, wsclient.Options{Token: edTok})
	if err != nil {
		t.Fatalf("dial with EdDSA token: %v", err)
	}
	t.Cleanup(c.Abandon)
	f, err := c.WaitType("unread_sync", waitTimeout)
	if err != nil {
		t.Fatalf("no unread_sync: %v", err)
	}
	var got struct {
		Notifications []struct {
			ID string `json:"id"`
		} `json:"notifications"`
		UnreadCount int `json:"unread_count"`
	}
	if err := f.Decode(&got); err != nil {
		t.Fatal(err)
	}
	wantID := created.Notifications[0].Id
	if got.UnreadCount != 1 || len(got.Notifications) != 1 || got.Notifications[0].ID != wantID {
		t.Fatalf("unread_sync %s, want u1's one notification %s", f.Raw, wantID)
	}

	// HS256: refused before the upgrade, whatever its key.
	for name, secret := range map[string][]byte{
		"random secret":        []byte("some-other-secret-0123456789abcdef"),
		"public key as secret": pemBytes.Bytes(),
	} {
		hsTok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
		if err != nil {
			t.Fatal(err)
		}
		status, body, err := wsclient.Handshake(wsURL, wsclient.Options{Token: hsTok})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if status != http.StatusUnauthorized {
			t.Fatalf("%s: HS256 token answered %d %q, want 401", name, status, body)
		}
	}
}
