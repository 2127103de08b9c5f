package serve

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/cl-dev/cl/heads"
)

const tinyDir = "../testdata/tinyvit"

// newHead returns an initial-head function for a fresh head of method
// with options.
func newHead(t testing.TB, method string, opts ...[2]string) func() (heads.Head, heads.Info, error) {
	return func() (heads.Head, heads.Info, error) {
		spec, ok := heads.Lookup(method)
		if !ok {
			t.Fatalf("no method %s", method)
		}
		cfg, err := spec.Parse(opts)
		if err != nil {
			return nil, heads.Info{}, err
		}
		h, err := spec.New(cfg)
		return h, heads.Info{}, err
	}
}

// testServer is a server on a state folder with an httptest front.
type testServer struct {
	t    testing.TB
	s    *Server
	ts   *httptest.Server
	dir  string
	bb   Backbone
	bbi  BackboneInfo
	cfg  Config
	init func() (heads.Head, heads.Info, error)

	mu       sync.Mutex
	observed map[[3]string]bool // path, method, status
}

const testToken = "s3cret-token"

func startServer(t testing.TB, dir string, cfg Config, init func() (heads.Head, heads.Info, error)) *testServer {
	t.Helper()
	bb, bbi := tinyBackbone(t)
	cfg.StateDir = dir
	if cfg.Token == "" && !cfg.Insecure {
		cfg.Token = testToken
	}
	ts := &testServer{t: t, dir: dir, bb: bb, bbi: bbi, cfg: cfg, init: init, observed: map[[3]string]bool{}}
	ts.open()
	t.Cleanup(func() { ts.close() })
	return ts
}

func (ts *testServer) open() {
	ts.t.Helper()
	s, err := New(ts.cfg, ts.bb, ts.bbi, ts.init, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		ts.t.Fatal(err)
	}
	ts.s = s
	ts.ts = httptest.NewServer(s.Handler())
}

// close shuts the server down cleanly (snapshot, journal closed).
func (ts *testServer) close() {
	if ts.s == nil {
		return
	}
	ts.ts.Close()
	if err := ts.s.Close(); err != nil {
		ts.t.Error(err)
	}
	ts.s = nil
}

// crash drops the server as a kill would: no snapshot, no re-solve; the
// journal file is closed with what was written (every acknowledged record
// was fsynced).
func (ts *testServer) crash() {
	ts.ts.Close()
	ts.s.res.close()
	ts.s.b.close()
	ts.s.snap.wait()
	ts.s.st.j.Close()
	ts.s.st.lock.Close()
	ts.s.closed.Store(true)
	ts.s = nil
}

func (ts *testServer) restart() {
	ts.t.Helper()
	ts.open()
}

type reply struct {
	code int
	hdr  http.Header
	body []byte
}

func (r reply) json(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("reply %d is not JSON (%v): %s", r.code, err, r.body)
	}
}

// errCode returns the error code of a JSON error reply ("" if none).
func (r reply) errCode() string {
	var e errorBody
	json.Unmarshal(r.body, &e)
	return e.Error.Code
}

func (ts *testServer) do(method, path, ctype string, body []byte, token string) reply {
	ts.t.Helper()
	req, err := http.NewRequest(method, ts.ts.URL+path, bytes.NewReader(body))
	if err != nil {
		ts.t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		ts.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	route := path
	if i := bytes.IndexByte([]byte(path), '?'); i >= 0 {
		route = path[:i]
	}
	ts.mu.Lock()
	ts.observed[[3]string{route, method, http.StatusText(resp.StatusCode)}] = true
	ts.mu.Unlock()
	recordObserved(route, method, resp.StatusCode)
	return reply{resp.StatusCode, resp.Header, b}
}

func (ts *testServer) postJSON(path string, v any) reply {
	ts.t.Helper()
	b, _ := json.Marshal(v)
	return ts.do("POST", path, "application/json", b, testToken)
}

func (ts *testServer) get(path string) reply {
	ts.t.Helper()
	return ts.do("GET", path, "", nil, "")
}

// must fails the test unless the reply has the status.
func must(t testing.TB, r reply, code int) reply {
	t.Helper()
	if r.code != code {
		t.Fatalf("status %d, want %d: %s", r.code, code, r.body)
	}
	return r
}

// multipartBody builds a multipart/form-data body: fields first, then the
// files in order.
func multipartBody(t testing.TB, fields map[string]string, files []part) ([]byte, string) {
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for k, v := range fields {
		w.WriteField(k, v)
	}
	for _, f := range files {
		fw, err := w.CreateFormFile("image", f.name)
		if err != nil {
			t.Fatal(err)
		}
		fw.Write(f.data)
	}
	w.Close()
	return buf.Bytes(), w.FormDataContentType()
}

// observedCodes collects (route, method, status) over every test request,
// for the OpenAPI test.
var observedCodes = struct {
	sync.Mutex
	m map[[2]string]map[int]bool
}{m: map[[2]string]map[int]bool{}}

func recordObserved(route, method string, code int) {
	observedCodes.Lock()
	defer observedCodes.Unlock()
	k := [2]string{route, method}
	if observedCodes.m[k] == nil {
		observedCodes.m[k] = map[int]bool{}
	}
	observedCodes.m[k][code] = true
}

// tinyImages reads the committed tiny ViT test images in images.txt order.
func tinyImages(t testing.TB) []part {
	t.Helper()
	list, err := os.ReadFile(filepath.Join(tinyDir, "images.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var out []part
	for _, name := range bytes.Fields(list) {
		b, err := os.ReadFile(filepath.Join(tinyDir, string(name)))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, part{name: string(name), data: b})
	}
	return out
}
