package serve

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"image"
	"image/gif"
	"image/jpeg"
	"image/png"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzRequests sends fuzzed bodies with each content type to predict,
// learn and forget. Every reply is JSON; nothing is a 5xx (but 507
// store_full, the documented answer of a full sample store); a refused learn
// or forget leaves the journal where it was.
//
// Coverage-guided fuzzing (go test ./serve -run '^$' -fuzz FuzzRequests)
// used to stall, reporting 0 execs/s for a minute at a time. The cause was
// not a hang: Go minimizes every input that finds new coverage, for up to
// -fuzzminimizetime (60 s by default), and reports that worker's executions
// only when it is done. Minimizing a body of n bytes tries O(n²) shorter
// bodies, so the kilobyte image seeds kept both workers minimizing for the
// whole 60 s. Now the seeds are images of a few dozen to a few hundred
// bytes, the state folder is on tmpfs where there is one (a learn's fsync
// costs nothing there), the state is kept small (see below), and TestMain
// bounds minimization to fuzzMinimizeTime unless -fuzzminimizetime is given.
func FuzzRequests(f *testing.F) {
	imgs := fuzzImages(f)
	feat := strings.TrimSuffix(strings.Repeat("0.5,", 32), ",")
	f.Add(uint8(0), "image/jpeg", imgs[0].data)
	f.Add(uint8(0), "image/png", imgs[1].data)
	f.Add(uint8(0), "image/gif", imgs[2].data)
	f.Add(uint8(1), "image/png", imgs[1].data)
	f.Add(uint8(0), "application/json", []byte(`{"features":[[`+feat+`]],"top":2}`))
	f.Add(uint8(1), "application/json", []byte(`{"samples":[{"id":"a","class":"b","features":[`+feat+`]}]}`))
	f.Add(uint8(2), "application/json", []byte(`{"ids":["a"]}`))
	f.Add(uint8(2), "application/json", []byte(`{"classes":["b"]}`))
	body, ct := multipartBody(f, map[string]string{"samples": `[{"id":"m","class":"n"}]`}, imgs[1:2])
	f.Add(uint8(1), ct, body)
	body, ct = multipartBody(f, nil, imgs[1:3])
	f.Add(uint8(0), ct, body)
	f.Add(uint8(0), "image/png", pngHeader(60000, 60000))

	bb, bbi := tinyBackbone(f)
	s, err := New(Config{StateDir: fastTempDir(f), Insecure: true, MaxBody: 1 << 20, MaxPixels: 1 << 20, MaxImages: 4, SnapshotEvery: 1 << 30},
		bb, bbi, newHead(f, "simplecil"), nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	h := s.Handler()
	paths := []string{"/v1/predict?top=3", "/v1/learn?id=q&class=r", "/v1/forget"}
	f.Fuzz(func(t *testing.T, route uint8, ctype string, body []byte) {
		path := paths[int(route)%len(paths)]
		seq := s.st.j.LastSeq()
		req := httptest.NewRequest("POST", path, bytes.NewReader(body))
		req.Header.Set("Content-Type", ctype)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 && !(rec.Code == 507 && strings.Contains(rec.Body.String(), `"store_full"`)) {
			t.Fatalf("%s %q: %d %s", path, ctype, rec.Code, rec.Body.Bytes())
		}
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("%s %q: reply is not JSON: %q", path, ctype, rec.Body.Bytes())
		}
		if rec.Code != 200 && s.st.j.LastSeq() != seq {
			t.Fatalf("%s %q: refused with %d but the journal moved from %d to %d", path, ctype, rec.Code, seq, s.st.j.LastSeq())
		}
		// Keep the state small: fuzzed ids and class names are mostly
		// new, and a head of thousands of classes would slow every
		// prediction (and so the fuzzer) down as it runs.
		if s.m.st.len() > 64 {
			s.m.mu.RLock()
			var f forgetRecord
			for c := range s.m.st.byClass {
				f.Classes = append(f.Classes, c)
			}
			s.m.mu.RUnlock()
			if _, err := s.forget(f); err != nil {
				t.Fatalf("forgetting the %d classes learned so far: %v", len(f.Classes), err)
			}
		}
	})
}

// fuzzMinimizeTime bounds how long the fuzzer minimizes an input that found
// new coverage (FuzzRequests).
const fuzzMinimizeTime = "1s"

// boundFuzzMinimization sets -test.fuzzminimizetime to fuzzMinimizeTime
// when fuzzing and the flag was not given (TestMain, after flag.Parse).
func boundFuzzMinimization() {
	if f := flag.Lookup("test.fuzz"); f == nil || f.Value.String() == "" {
		return
	}
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.fuzzminimizetime" })
	if !given {
		flag.Set("test.fuzzminimizetime", fuzzMinimizeTime)
	}
}

// fastTempDir is a temporary folder on tmpfs (/dev/shm) where there is one,
// else t.TempDir(): the fuzzer's state folder, where fsync costs nothing.
func fastTempDir(t testing.TB) string {
	dir, err := os.MkdirTemp("/dev/shm", "cl-serve-fuzz-")
	if err != nil {
		return t.TempDir()
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// fuzzImages are small images of each format the seeds use (JPEG, PNG,
// GIF; a few dozen to a few hundred bytes): the fuzzer minimizes an input in
// time quadratic in its length.
func fuzzImages(t testing.TB) []part {
	t.Helper()
	m := image.NewRGBA(image.Rect(0, 0, 4, 3))
	for i := range m.Pix {
		m.Pix[i] = byte(i * 37)
	}
	var j, p, g bytes.Buffer
	if err := jpeg.Encode(&j, m, &jpeg.Options{Quality: 50}); err != nil {
		t.Fatal(err)
	}
	if err := png.Encode(&p, m); err != nil {
		t.Fatal(err)
	}
	if err := gif.Encode(&g, m, &gif.Options{NumColors: 4}); err != nil {
		t.Fatal(err)
	}
	return []part{{"a.jpg", j.Bytes()}, {"b.png", p.Bytes()}, {"c.gif", g.Bytes()}}
}

// FuzzRecord: journal payloads decode without panicking, and what encodes
// decodes to the same thing.
func FuzzRecord(f *testing.F) {
	f.Add(encodeLearn(2, []newSample{{ID: "a", Class: "b", X: []float32{1, 2}}}))
	f.Add(encodeForget(forgetRecord{IDs: []string{"a"}}))
	f.Add(encodeForget(forgetRecord{Classes: []string{"b"}}))
	f.Fuzz(func(t *testing.T, p []byte) {
		kind, learn, forget, err := decodeRecord(p)
		if err != nil {
			return
		}
		enc := func(kind byte, learn []newSample, forget forgetRecord) []byte {
			if kind == kindLearn {
				if len(learn) == 0 {
					return nil
				}
				return encodeLearn(len(learn[0].X), learn)
			}
			return encodeForget(forget)
		}
		again := enc(kind, learn, forget)
		if again == nil {
			return
		}
		k2, l2, f2, err := decodeRecord(again)
		if err != nil || k2 != kind || !bytes.Equal(enc(k2, l2, f2), again) {
			t.Fatalf("round trip changed the record: %v", err)
		}
	})
}

// TestMutatedImages runs seeded random mutations (byte changes, bit flips,
// truncations) of the committed images through predict and learn: every
// reply is a JSON 200 or 4xx, never a 5xx or a hang. (It complements
// FuzzRequests, whose seeds are small images rather than these; a
// 200,000-mutation run of this loop on the decoder found nothing.)
func TestMutatedImages(t *testing.T) {
	ts := startServer(t, t.TempDir(), Config{Insecure: true}, newHead(t, "simplecil"))
	imgs := tinyImages(t)
	r := rand.New(rand.NewPCG(1993, 11))
	h := ts.s.Handler()
	n := 3000
	if testing.Short() {
		n = 300
	}
	for i := 0; i < n; i++ {
		im := imgs[r.IntN(len(imgs))]
		b := append([]byte(nil), im.data...)
		for k := 0; k < 1+r.IntN(8); k++ {
			j := r.IntN(len(b))
			switch r.IntN(3) {
			case 0:
				b[j] = byte(r.IntN(256))
			case 1:
				b = b[:j+1]
			default:
				b[j] ^= 1 << r.IntN(8)
			}
		}
		path := "/v1/predict"
		if i%4 == 0 {
			path = fmt.Sprintf("/v1/learn?id=m%d&class=c%d", i, i%3)
		}
		req := httptest.NewRequest("POST", path, bytes.NewReader(b))
		req.Header.Set("Content-Type", "image/"+strings.TrimPrefix(filepath.Ext(im.name), "."))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 || !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("mutation %d of %s to %s: %d %s", i, im.name, path, rec.Code, rec.Body.Bytes())
		}
	}
}
