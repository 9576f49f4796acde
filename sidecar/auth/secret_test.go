package auth

import (
	"bytes"
	"log"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func TestLoadOrCreateSecret(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	first, err := LoadOrCreateSecret(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 64 {
		t.Fatalf("secret length %d, want 64 hex chars", len(first))
	}
	st, err := os.Stat(filepath.Join(dir, SecretFileName))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", st.Mode().Perm())
	}
	again, err := LoadOrCreateSecret(dir)
	if err != nil || !bytes.Equal(first, again) {
		t.Fatalf("second load = %q, %v; want the same secret", again, err)
	}
}

func TestLoadOrCreateSecretConcurrent(t *testing.T) {
	dir := t.TempDir()
	var wg sync.WaitGroup
	got := make([][]byte, 8)
	errs := make([]error, 8)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], errs[i] = LoadOrCreateSecret(dir)
		}()
	}
	wg.Wait()
	for i := range got {
		if errs[i] != nil || !bytes.Equal(got[i], got[0]) {
			t.Fatalf("caller %d: %q, %v", i, got[i], errs[i])
		}
	}
}

func TestLoadSecretFileTrimsAndChecksLength(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "s")
	key := strings.Repeat("k", 40)
	if err := os.WriteFile(p, []byte("  \n"+key+"\r\n\t"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := LoadSecretFile(p)
	if err != nil || string(got) != key {
		t.Fatalf("LoadSecretFile = %q, %v", got, err)
	}
	if err := os.WriteFile(p, []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadSecretFile(p); err == nil {
		t.Fatal("short secret accepted")
	}
	if _, err := LoadSecretFile(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("missing file accepted")
	}
}

func TestFingerprint(t *testing.T) {
	a, b := Fingerprint("token-a"), Fingerprint("token-b")
	if len(a) != 8 || a == b || a != Fingerprint("token-a") {
		t.Fatalf("fingerprints %q %q", a, b)
	}
}

func TestRedaction(t *testing.T) {
	tok, _, err := NewHS256Issuer(testSecret).Issue("u1", 60_000_000_000)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse("http://user:pw@host:8787/ws?a=1&token=" + tok + "&b=2")
	got := RedactURL(u)
	if strings.Contains(got, tok) || strings.Contains(got, "pw") {
		t.Fatalf("RedactURL = %q", got)
	}
	if !strings.Contains(got, "a=1") || !strings.Contains(got, "b=2") || !strings.Contains(got, "host:8787") {
		t.Fatalf("RedactURL lost harmless parts: %q", got)
	}
	texts := []string{
		`GET /ws?token=not-a-jwt-but-secret HTTP/1.1`,
		`Authorization: Bearer ` + tok,
		`error parsing "` + tok + `": bad`,
		`header authorization=xyzxyzxyzxyzxyz`,
		`Cookie: session=abcdefabcdefabcdef`,
	}
	for _, s := range texts {
		r := Redact(s)
		for _, secret := range []string{tok, "not-a-jwt-but-secret", "xyzxyzxyzxyzxyz", "abcdefabcdefabcdef"} {
			if strings.Contains(r, secret) {
				t.Errorf("Redact(%q) = %q keeps a secret", s, r)
			}
		}
	}
	if got := Redact("dial app.example.com:443: refused"); got != "dial app.example.com:443: refused" {
		t.Errorf("Redact changed harmless text: %q", got)
	}
}

func TestRedactingLogger(t *testing.T) {
	var buf bytes.Buffer
	l := hclog.New(&hclog.LoggerOptions{Output: &buf, Level: hclog.Trace})
	var std *log.Logger = RedactingLogger(l)
	std.Printf("http: panic serving 1.2.3.4:5: boom /ws?token=%s", "sEcReTsEcReTsEcReT")
	std.Printf("http: TLS handshake error from 1.2.3.4:5: EOF")
	out := buf.String()
	if strings.Contains(out, "sEcReTsEcReTsEcReT") {
		t.Fatalf("log keeps the token: %s", out)
	}
	if !strings.Contains(out, "[ERROR]") || !strings.Contains(out, "[DEBUG]") {
		t.Fatalf("levels not mapped: %s", out)
	}
}
