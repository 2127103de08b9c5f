package serve

import (
	_ "embed"
	"net/http"
)

// uiPage is the web page GET / serves (serve/ui/index.html, embedded: plain
// HTML and JavaScript, no build step, nothing loaded from elsewhere). It
// calls the API of this server: predict an image picked, dropped or taken
// with the camera; teach a class from images (with the bearer token); list
// and forget classes.
//
//go:embed ui/index.html
var uiPage []byte

// uiCSP keeps the page to this server: inline script and style, images
// from blob URLs (previews), the camera stream, API calls to the origin.
const uiCSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' blob: data:; " +
	"media-src blob: mediastream:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

func handleUI(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", uiCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-cache")
	w.Write(uiPage)
}
