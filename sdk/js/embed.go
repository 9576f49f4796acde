// Package heraldjs embeds the browser SDK, herald.js, so that a Go host
// application can serve it from its own binary, e.g.
//
//	mux.Handle("GET /herald.js", heraldjs.Handler())
package heraldjs

import (
	"bytes"
	_ "embed"
	"net/http"
	"time"
)

// Source is herald.js, the dependency-free ES module. Do not modify it.
//
//go:embed herald.js
var Source []byte

// Handler serves Source as JavaScript, with conditional requests and ranges
// handled by http.ServeContent.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		http.ServeContent(w, r, "herald.js", time.Time{}, bytes.NewReader(Source))
	})
}
