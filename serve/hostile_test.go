package serve

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"hash/crc32"
	"strings"
	"testing"
)

// pngHeader returns a PNG signature and IHDR chunk declaring w×h 8-bit RGB:
// a "pixel bomb" when w·h is huge (no pixel data follows).
func pngHeader(w, h uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 2
	binary.Write(&b, binary.BigEndian, uint32(13))
	chunk := append([]byte("IHDR"), ihdr...)
	b.Write(chunk)
	binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(chunk))
	return b.Bytes()
}

// stateOf is what must not change when a request is refused.
func stateOf(t *testing.T, ts *testServer) string {
	t.Helper()
	var m modelReply
	must(t, ts.get("/v1/model"), 200).json(t, &m)
	c := ts.get("/v1/classes")
	s := ts.get("/v1/samples?limit=10000")
	return string(must(t, reply{200, nil, mustJSON(m)}, 200).body) + string(c.body) + string(s.body)
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// TestHostileInput sends bad, oversized and unauthorised requests: each is
// a clear 4xx JSON error with the expected code, the server keeps serving,
// and the model, classes and samples do not change.
func TestHostileInput(t *testing.T) {
	ts := startServer(t, t.TempDir(), Config{MaxBody: 64 << 10, MaxPixels: 1 << 20, MaxImages: 3}, newHead(t, "simplecil"))
	w := newWorld(3, 32)
	imgs := tinyImages(t)
	must(t, ts.postJSON("/v1/learn", learnRequest{Samples: []learnSample{w.sample(0), w.sample(1)}}), 200)
	before := stateOf(t, ts)

	feat := func(d int) []float32 { return make([]float32, d) }
	manyRows := make([][]float32, 4)
	for i := range manyRows {
		manyRows[i] = feat(32)
	}
	bigPart := bytes.Repeat([]byte{0}, 70<<10)
	body3, ct3 := multipartBody(t, nil, []part{imgs[0], imgs[1], imgs[2], imgs[3]})
	bodyBig, ctBig := multipartBody(t, nil, []part{{name: "big.png", data: bigPart}})
	noSamples, ctNo := multipartBody(t, nil, []part{imgs[0]})
	cases := []struct {
		name, method, path, ctype string
		body                      []byte
		token                     string
		code                      int
		err                       string
	}{
		{"truncated jpeg", "POST", "/v1/predict", "image/jpeg", imgs[0].data[:len(imgs[0].data)/2], "", 400, "bad_image"},
		{"not an image", "POST", "/v1/predict", "image/png", []byte("hello, world"), "", 400, "bad_image"},
		{"empty image", "POST", "/v1/predict", "image/png", nil, "", 400, "bad_image"},
		{"pixel bomb", "POST", "/v1/predict", "image/png", pngHeader(50000, 50000), "", 413, "image_too_large"},
		{"pixel bomb learn", "POST", "/v1/learn?id=x&class=y", "image/png", pngHeader(2000, 2000), testToken, 413, "image_too_large"},
		{"oversized body", "POST", "/v1/predict", "image/png", bigPart, "", 413, "body_too_large"},
		{"oversized multipart", "POST", "/v1/predict", ctBig, bodyBig, "", 413, "body_too_large"},
		{"too many images", "POST", "/v1/predict", ct3, body3, "", 413, "too_many_images"},
		{"too many rows", "POST", "/v1/predict", "application/json", mustJSON(predictRequest{Features: manyRows}), "", 413, "too_many_images"},
		{"wrong content type", "POST", "/v1/predict", "text/plain", []byte("x"), "", 415, "unsupported_media_type"},
		{"no content type", "POST", "/v1/predict", "", []byte("x"), "", 415, "unsupported_media_type"},
		{"forget as form", "POST", "/v1/forget", "application/x-www-form-urlencoded", []byte("classes=class0"), testToken, 415, "unsupported_media_type"},
		{"bad json", "POST", "/v1/predict", "application/json", []byte(`{"features": [[1,2`), "", 400, "bad_json"},
		{"unknown field", "POST", "/v1/learn", "application/json", []byte(`{"samples": [], "evil": 1}`), testToken, 400, "bad_json"},
		{"wrong dimension predict", "POST", "/v1/predict", "application/json", mustJSON(predictRequest{Features: [][]float32{feat(31)}}), "", 400, "wrong_dimension"},
		{"wrong dimension learn", "POST", "/v1/learn", "application/json", mustJSON(learnRequest{Samples: []learnSample{{ID: "a", Class: "b", Features: feat(33)}}}), testToken, 400, "wrong_dimension"},
		{"float overflow", "POST", "/v1/learn", "application/json", []byte(`{"samples":[{"id":"a","class":"b","features":[1e39]}]}`), testToken, 400, "bad_json"},
		{"empty id", "POST", "/v1/learn", "application/json", mustJSON(learnRequest{Samples: []learnSample{{ID: "", Class: "b", Features: feat(32)}}}), testToken, 400, "bad_id"},
		{"invalid utf-8 class", "POST", "/v1/learn", "application/json", []byte("{\"samples\":[{\"id\":\"a\",\"class\":\"\xff\",\"features\":[" + strings.Repeat("0,", 31) + "0]}]}"), testToken, 400, "bad_json"},
		{"invalid utf-8 class in query", "POST", "/v1/learn?id=a&class=%ff", "image/jpeg", imgs[0].data, testToken, 400, "bad_class"},
		{"duplicate id in request", "POST", "/v1/learn", "application/json", mustJSON(learnRequest{Samples: []learnSample{{ID: "a", Class: "b", Features: feat(32)}, {ID: "a", Class: "b", Features: feat(32)}}}), testToken, 400, "duplicate_id"},
		{"learn image without id", "POST", "/v1/learn", "image/jpeg", imgs[0].data, testToken, 400, "missing_id_or_class"},
		{"multipart learn without samples", "POST", "/v1/learn", ctNo, noSamples, testToken, 400, "missing_samples"},
		{"unknown class", "POST", "/v1/forget", "application/json", []byte(`{"classes":["nope"]}`), testToken, 404, "unknown_class"},
		{"unknown id", "POST", "/v1/forget", "application/json", []byte(`{"ids":["nope"]}`), testToken, 404, "unknown_id"},
		{"forget nothing", "POST", "/v1/forget", "application/json", []byte(`{}`), testToken, 400, "nothing_to_forget"},
		{"forget both", "POST", "/v1/forget", "application/json", []byte(`{"classes":["class0"],"ids":["id1"]}`), testToken, 400, "bad_forget"},
		{"missing token learn", "POST", "/v1/learn", "application/json", mustJSON(learnRequest{Samples: []learnSample{{ID: "z", Class: "b", Features: feat(32)}}}), "", 401, "unauthorized"},
		{"wrong token learn", "POST", "/v1/learn", "application/json", mustJSON(learnRequest{Samples: []learnSample{{ID: "z", Class: "b", Features: feat(32)}}}), "s3cret-tokem", 403, "forbidden"},
		{"missing token forget", "POST", "/v1/forget", "application/json", []byte(`{"classes":["class0"]}`), "", 401, "unauthorized"},
		{"wrong token forget", "POST", "/v1/forget", "application/json", []byte(`{"classes":["class0"]}`), "x", 403, "forbidden"},
		{"bad top", "POST", "/v1/predict?top=0", "application/json", mustJSON(predictRequest{Features: [][]float32{feat(32)}}), "", 400, "bad_top"},
		{"huge top", "POST", "/v1/predict?top=100000", "application/json", mustJSON(predictRequest{Features: [][]float32{feat(32)}}), "", 400, "bad_top"},
		{"wrong method", "GET", "/v1/predict", "", nil, "", 405, "method_not_allowed"},
		{"wrong method learn", "DELETE", "/v1/learn", "", nil, testToken, 405, "method_not_allowed"},
		{"no route", "GET", "/v2/predict", "", nil, "", 404, "not_found"},
		{"bad limit", "GET", "/v1/samples?limit=0", "", nil, "", 400, "bad_limit"},
		{"bad after", "GET", "/v1/samples?after=-1", "", nil, "", 400, "bad_after"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := ts.do(c.method, c.path, c.ctype, c.body, c.token)
			if r.code != c.code || r.errCode() != c.err {
				t.Fatalf("status %d code %q, want %d %q: %s", r.code, r.errCode(), c.code, c.err, r.body)
			}
			if r.hdr.Get("Content-Type") != "application/json" {
				t.Errorf("Content-Type %q, want application/json", r.hdr.Get("Content-Type"))
			}
			if c.code == 401 && !strings.HasPrefix(r.hdr.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("401 without WWW-Authenticate: Bearer")
			}
		})
	}
	if after := stateOf(t, ts); after != before {
		t.Fatalf("state changed by refused requests:\nbefore %s\nafter  %s", before, after)
	}
	// Still serving.
	must(t, ts.postJSON("/v1/learn", learnRequest{Samples: []learnSample{w.sample(2)}}), 200)
	must(t, ts.do("POST", "/v1/predict", "image/jpeg", imgs[0].data, ""), 200)
}

// TestInsecureNoAuth: with Insecure the mutating routes need no token.
func TestInsecureNoAuth(t *testing.T) {
	ts := startServer(t, t.TempDir(), Config{Insecure: true}, newHead(t, "simplecil"))
	w := newWorld(4, 32)
	b, _ := json.Marshal(learnRequest{Samples: []learnSample{w.sample(0)}})
	must(t, ts.do("POST", "/v1/learn", "application/json", b, ""), 200)
}

// TestNoTokenRefused: a server without a token and without Insecure does
// not start.
func TestNoTokenRefused(t *testing.T) {
	bb, bbi := tinyBackbone(t)
	if _, err := New(Config{StateDir: t.TempDir()}, bb, bbi, newHead(t, "simplecil"), nil); err == nil || !strings.Contains(err.Error(), "--insecure-no-auth") {
		t.Fatalf("New without a token: %v", err)
	}
}

// TestStateLocked: a second server on the same state folder is refused.
func TestStateLocked(t *testing.T) {
	dir := t.TempDir()
	startServer(t, dir, Config{}, newHead(t, "simplecil"))
	bb, bbi := tinyBackbone(t)
	if _, err := New(Config{StateDir: dir, Token: testToken}, bb, bbi, newHead(t, "simplecil"), nil); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second server on one folder: %v", err)
	}
}
