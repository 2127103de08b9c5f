package serve

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net/http/httptest"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// openAPI is the part of an OpenAPI 3 document the checks read.
type openAPI struct {
	OpenAPI string `json:"openapi"`
	Info    struct {
		Title, Version string
	} `json:"info"`
	Paths      map[string]map[string]operation `json:"paths"`
	Components struct {
		Responses       map[string]json.RawMessage `json:"responses"`
		Schemas         map[string]json.RawMessage `json:"schemas"`
		SecuritySchemes map[string]json.RawMessage `json:"securitySchemes"`
		Headers         map[string]json.RawMessage `json:"headers"`
	} `json:"components"`
}

type operation struct {
	Summary   string                     `json:"summary"`
	Responses map[string]json.RawMessage `json:"responses"`
	Security  []map[string][]string      `json:"security"`
}

func loadOpenAPI(t testing.TB) openAPI {
	var doc openAPI
	if err := json.Unmarshal(openAPIDoc, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	return doc
}

// TestOpenAPIDocument checks openapi.json against the handlers: it is an
// OpenAPI 3 document whose references resolve, it lists exactly the routes
// and methods the server serves, with the token requirement, and the
// status codes every route can give (200, 405; 401 and 403 with a token;
// 503 when limited). TestMain checks, after every test ran, that each
// status code a route actually answered is documented for it.
func TestOpenAPIDocument(t *testing.T) {
	doc := loadOpenAPI(t)
	if !strings.HasPrefix(doc.OpenAPI, "3.") || doc.Info.Title == "" || doc.Info.Version == "" {
		t.Fatalf("not an OpenAPI 3 document: openapi %q, info %+v", doc.OpenAPI, doc.Info)
	}
	// Every $ref points at a component that exists.
	var refs []string
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if k == "$ref" {
					refs = append(refs, e.(string))
				}
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	var raw any
	json.Unmarshal(openAPIDoc, &raw)
	walk(raw)
	for _, r := range refs {
		parts := strings.Split(strings.TrimPrefix(r, "#/components/"), "/")
		if len(parts) != 2 {
			t.Errorf("$ref %q is not a local component", r)
			continue
		}
		var m map[string]json.RawMessage
		switch parts[0] {
		case "responses":
			m = doc.Components.Responses
		case "schemas":
			m = doc.Components.Schemas
		case "headers":
			m = doc.Components.Headers
		}
		if _, ok := m[parts[1]]; !ok {
			t.Errorf("$ref %q: no such component", r)
		}
	}

	// Routes and methods: the document and the handlers' table agree.
	bb, bbi := tinyBackbone(t)
	s, err := New(Config{StateDir: t.TempDir(), Insecure: true}, bb, bbi, newHead(t, "simplecil"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	inTable := map[string]bool{}
	for _, rt := range s.table() {
		key := rt.path + " " + strings.ToLower(rt.method)
		inTable[key] = true
		op, ok := doc.Paths[rt.path][strings.ToLower(rt.method)]
		if !ok {
			t.Errorf("%s %s is served but not in openapi.json", rt.method, rt.path)
			continue
		}
		if op.Summary == "" || op.Responses["200"] == nil || op.Responses["405"] == nil {
			t.Errorf("%s %s: needs a summary and responses 200 and 405", rt.method, rt.path)
		}
		if rt.mutating != (len(op.Security) > 0) {
			t.Errorf("%s %s: needs the token %v, openapi.json security %v", rt.method, rt.path, rt.mutating, op.Security)
		}
		if rt.mutating && (op.Responses["401"] == nil || op.Responses["403"] == nil) {
			t.Errorf("%s %s: a route with a token must document 401 and 403", rt.method, rt.path)
		}
		if rt.limited && op.Responses["503"] == nil {
			t.Errorf("%s %s: a limited route must document 503", rt.method, rt.path)
		}
	}
	for p, ops := range doc.Paths {
		for m := range ops {
			if !inTable[p+" "+m] {
				t.Errorf("openapi.json documents %s %s, which is not served", strings.ToUpper(m), p)
			}
		}
	}
	// The document is what /openapi.json serves.
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/openapi.json", nil))
	if rec.Code != 200 || !bytes.Equal(rec.Body.Bytes(), openAPIDoc) || rec.Header().Get("Content-Type") != "application/json" {
		t.Errorf("GET /openapi.json: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
}

// checkObservedCodes returns the (route, method, status) triples that tests
// observed but openapi.json does not document.
func checkObservedCodes() []string {
	var doc openAPI
	if err := json.Unmarshal(openAPIDoc, &doc); err != nil {
		return []string{"openapi.json: " + err.Error()}
	}
	observedCodes.Lock()
	defer observedCodes.Unlock()
	var bad []string
	for k, codes := range observedCodes.m {
		route, method := k[0], strings.ToLower(k[1])
		ops, known := doc.Paths[route]
		for code := range codes {
			if !known {
				if code != 404 { // unknown routes must answer 404
					bad = append(bad, fmt.Sprintf("%s %s (not a route) answered %d", k[1], route, code))
				}
				continue
			}
			op, ok := ops[method]
			if !ok {
				if code != 405 {
					bad = append(bad, fmt.Sprintf("%s %s (not a documented method) answered %d, want 405", k[1], route, code))
				}
				continue
			}
			if op.Responses[strconv.Itoa(code)] == nil {
				bad = append(bad, fmt.Sprintf("%s %s answered %d, which openapi.json does not document", k[1], route, code))
			}
		}
	}
	sort.Strings(bad)
	return bad
}

func TestMain(m *testing.M) {
	flag.Parse()
	boundFuzzMinimization()
	code := m.Run()
	if bad := checkObservedCodes(); len(bad) > 0 {
		fmt.Fprintln(os.Stderr, "FAIL: status codes the handlers answered but openapi.json does not document:")
		for _, b := range bad {
			fmt.Fprintln(os.Stderr, "  ", b)
		}
		code = 1
	}
	os.Exit(code)
}
