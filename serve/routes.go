package serve

import (
	"crypto/sha256"
	"crypto/subtle"
	_ "embed"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
)

// route is one endpoint. The table is the one source of the routes: the
// mux, authentication and the OpenAPI test all read it.
type route struct {
	method, path string
	mutating     bool // needs the bearer token
	limited      bool // counts against MaxConcurrent
	h            http.HandlerFunc
}

func (s *Server) table() []route {
	return []route{
		{"POST", "/v1/predict", false, true, s.handlePredict},
		{"POST", "/v1/learn", true, true, s.handleLearn},
		{"POST", "/v1/forget", true, true, s.handleForget},
		{"GET", "/v1/classes", false, true, s.handleClasses},
		{"GET", "/v1/model", false, true, s.handleModel},
		{"GET", "/v1/samples", false, true, s.handleSamples},
		{"GET", "/healthz", false, false, s.handleHealth},
		{"GET", "/readyz", false, false, s.handleReady},
		{"GET", "/metrics", false, false, s.met.handler().ServeHTTP},
		{"GET", "/openapi.json", false, false, handleOpenAPI},
		{"GET", "/", false, false, handleUI}, // the web page (ui.go); exactly "/"
	}
}

//go:embed openapi.json
var openAPIDoc []byte

func handleOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Write(openAPIDoc)
}

func (s *Server) routes() { s.mux = newMux(s.table(), s.met, s.serveRoute) }

// newMux builds the mux of a route table: one handler per path that runs
// the route of the request's method through serve (GET also answers HEAD),
// 405 with Allow for other methods, 404 JSON for paths not in the table;
// every path is counted in met under its own label, the rest as "other".
func newMux(table []route, met *metrics, serve func(route, http.ResponseWriter, *http.Request)) *http.ServeMux {
	mux := http.NewServeMux()
	byPath := map[string][]route{}
	var order []string
	for _, rt := range table {
		if byPath[rt.path] == nil {
			order = append(order, rt.path)
		}
		byPath[rt.path] = append(byPath[rt.path], rt)
	}
	for _, p := range order {
		rts := byPath[p]
		var allow []string
		for _, rt := range rts {
			allow = append(allow, rt.method)
		}
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			for _, rt := range rts {
				if r.Method == rt.method || (rt.method == "GET" && r.Method == "HEAD") {
					serve(rt, w, r)
					return
				}
			}
			w.Header().Set("Allow", strings.Join(allow, ", "))
			writeErr(w, errf(405, "method_not_allowed", "%s %s: use %s", r.Method, p, strings.Join(allow, " or ")))
		})
		pattern := p
		if p == "/" {
			pattern = "/{$}" // only "/" itself; other paths fall through to the 404 below
		}
		mux.Handle(pattern, met.instrument(p, h))
	}
	mux.Handle("/", met.instrument("other", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeErr(w, errf(404, "not_found", "no route %s (GET /openapi.json lists them)", r.URL.Path))
	})))
	return mux
}

// admit takes one of sem's slots (Config.MaxConcurrent of them) for a
// limited route; the caller releases it with <-sem. When every slot is
// taken it counts the rejection, answers 503 busy with Retry-After and
// returns false.
func admit(w http.ResponseWriter, sem chan struct{}, met *metrics, maxConcurrent int) bool {
	select {
	case sem <- struct{}{}:
		return true
	default:
		met.rejected.WithLabelValues("too_many_requests").Inc()
		w.Header().Set("Retry-After", "1")
		writeErr(w, errf(503, "busy", "the server is handling %d requests (--max-concurrent); retry later", maxConcurrent))
		return false
	}
}

func (s *Server) serveRoute(rt route, w http.ResponseWriter, r *http.Request) {
	if rt.mutating && !s.cfg.Insecure {
		if err := s.checkToken(r); err != nil {
			if err.status == 401 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="cl"`)
			}
			writeErr(w, err)
			return
		}
	}
	if rt.limited {
		if !admit(w, s.sem, s.met, s.cfg.MaxConcurrent) {
			return
		}
		defer func() { <-s.sem }()
	}
	rt.h(w, r)
}

// checkToken compares the bearer token in constant time (of the tokens'
// SHA-256, so neither length nor content leaks through timing).
func (s *Server) checkToken(r *http.Request) *apiErr {
	auth := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(auth, " ")
	if auth == "" || !ok || !strings.EqualFold(scheme, "Bearer") {
		return errf(401, "unauthorized", "this route needs an Authorization: Bearer <token> header")
	}
	a := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	b := sha256.Sum256([]byte(s.cfg.Token))
	if subtle.ConstantTimeCompare(a[:], b[:]) != 1 {
		return errf(403, "forbidden", "the bearer token is wrong")
	}
	return nil
}

// errorBody is every error reply: {"error": {"code": …, "message": …}}.
type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.Encode(v)
}

// writeErr writes err as a JSON error: its status for *apiErr, 503 with
// Retry-After for a full queue, else 500.
func writeErr(w http.ResponseWriter, err error) {
	var ae *apiErr
	switch {
	case errors.As(err, &ae):
	case errors.Is(err, errQueueFull):
		w.Header().Set("Retry-After", "1")
		ae = errf(503, "queue_full", "%v; retry later", err)
	case errors.Is(err, errNotReady):
		w.Header().Set("Retry-After", "1")
		ae = errf(503, "not_ready", "%v; retry later", err)
	default:
		ae = errf(500, "internal", "%v", err)
	}
	var b errorBody
	b.Error.Code, b.Error.Message = ae.code, ae.msg
	writeJSON(w, ae.status, b)
}
