package serve

import (
	"strconv"
	"strings"
	"testing"
)

// serverTiming parses a Server-Timing header of name;dur=MS entries, in
// order.
func serverTiming(t *testing.T, h string) ([]string, []float64) {
	t.Helper()
	var names []string
	var durs []float64
	for _, e := range strings.Split(h, ", ") {
		name, dur, ok := strings.Cut(e, ";dur=")
		v, err := strconv.ParseFloat(dur, 64)
		if !ok || err != nil || v < 0 {
			t.Fatalf("Server-Timing %q: entry %q is not NAME;dur=MS with MS ≥ 0", h, e)
		}
		names, durs = append(names, name), append(durs, v)
	}
	return names, durs
}

// TestServerTiming: a predict reply's Server-Timing header names the phases
// of the request in order (an image: read, decode, queue, backbone, wake,
// head; feature rows: read, parse, head), then total, and the phases, which
// follow one another, add up to no more than the total (each is rounded to
// a microsecond). Other routes carry no Server-Timing.
func TestServerTiming(t *testing.T) {
	ts := startServer(t, t.TempDir(), Config{}, newHead(t, "simplecil"))
	imgs := tinyImages(t)
	must(t, ts.do("POST", "/v1/learn?id=s0&class=c0", "image/jpeg", imgs[0].data, testToken), 200)
	check := func(what string, r reply, want ...string) {
		t.Helper()
		names, durs := serverTiming(t, r.hdr.Get("Server-Timing"))
		if strings.Join(names, ",") != strings.Join(append(want, "total"), ",") {
			t.Fatalf("%s: Server-Timing phases %v, want %v then total", what, names, want)
		}
		sum := 0.0
		for _, d := range durs[:len(durs)-1] {
			sum += d
		}
		if total := durs[len(durs)-1]; sum > total+0.001*float64(len(durs)) {
			t.Errorf("%s: the phases add up to %.3f ms, more than the total %.3f ms", what, sum, total)
		}
	}
	check("one image", must(t, ts.do("POST", "/v1/predict?top=1", "image/png", imgs[5].data, ""), 200),
		"read", "decode", "queue", "backbone", "wake", "head")
	body, ct := multipartBody(t, nil, imgs)
	check("multipart", must(t, ts.do("POST", "/v1/predict", ct, body, ""), 200),
		"read", "decode", "queue", "backbone", "wake", "head")
	x := make([]float32, ts.s.dim)
	check("features", must(t, ts.postJSON("/v1/predict", map[string]any{"features": [][]float32{x}}), 200),
		"read", "parse", "head")
	if h := must(t, ts.get("/v1/classes"), 200).hdr.Get("Server-Timing"); h != "" {
		t.Errorf("GET /v1/classes has Server-Timing %q", h)
	}
}
