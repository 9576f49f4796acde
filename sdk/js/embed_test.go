package heraldjs

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

func TestHandlerServesTheSDK(t *testing.T) {
	onDisk, err := os.ReadFile("herald.js")
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/herald.js", nil))
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/javascript") {
		t.Fatalf("status %d, content type %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	if !bytes.Equal(rec.Body.Bytes(), onDisk) || !bytes.Contains(onDisk, []byte("export class HeraldClient")) {
		t.Fatal("served bytes differ from sdk/js/herald.js, or it exports no HeraldClient")
	}
}
