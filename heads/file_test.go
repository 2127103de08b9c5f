package heads

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cl-dev/cl/features"
)

func testSet(ids []string, labels []int, classes []string, d int, base float32) *features.Set {
	s := &features.Set{N: len(ids), D: d, IDs: ids, Labels: labels, Classes: classes,
		Model: "m.onnx", ModelSHA256: "sha", Preprocess: "{}"}
	for i := range ids {
		for j := 0; j < d; j++ {
			s.X = append(s.X, base+float32(10*i+j))
		}
	}
	return s
}

func TestCheckFeatures(t *testing.T) {
	set := testSet([]string{"a"}, []int{0}, []string{"c"}, 4, 0)
	info := InfoFrom(set)
	if err := CheckFeatures(info, set); err != nil {
		t.Fatal(err)
	}
	other := *set
	other.ModelSHA256 = "other"
	if err := CheckFeatures(info, &other); err == nil || !strings.Contains(err.Error(), "model") {
		t.Errorf("other model: %v", err)
	}
	other = *set
	other.Preprocess = `{"resize":224}`
	if err := CheckFeatures(info, &other); err == nil || !strings.Contains(err.Error(), "preprocess") {
		t.Errorf("other preprocessing: %v", err)
	}
	other = *set
	other.D = 8
	if err := CheckFeatures(info, &other); err == nil || !strings.Contains(err.Error(), "dimension 8") {
		t.Errorf("other dimension: %v", err)
	}
	// With fingerprints on both sides, they decide: another file of the same
	// graph (other name and file hash) is accepted, another graph is not.
	info.Fingerprint, set.Fingerprint = "fp", "fp"
	other = *set
	other.Model, other.ModelSHA256 = "renamed.onnx", "other"
	if err := CheckFeatures(info, &other); err != nil {
		t.Errorf("same fingerprint, other file: %v", err)
	}
	other.Fingerprint = "fp2"
	if err := CheckFeatures(info, &other); err == nil || !strings.Contains(err.Error(), "fingerprint fp2") {
		t.Errorf("other fingerprint: %v", err)
	}
}

// headBytes returns a saved head file of each kind, for the fuzzer's corpus
// and the corruption tests.
func headBytes(t testing.TB) [][]byte {
	var out [][]byte
	dir := t.TempDir()
	for _, tc := range propertyCases {
		h := newHead(t, tc.method, tc.opts)
		fit(t, h, []float32{1, 2, 3, 4, 2, 2, 5, 1, 0, 3, 1, 1}, []int{0, 0, 0, 2, 2, 2}, 2)
		p := filepath.Join(dir, tc.name)
		if err := Save(p, h, Info{Classes: []string{"a", "b", "c"}, ModelSHA256: "s", Preprocess: "{}"}); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func TestLoadCorrupt(t *testing.T) {
	for _, b := range headBytes(t) {
		if _, _, err := decode(b); err != nil {
			t.Fatal(err)
		}
		for _, n := range []int{0, 7, 8, 20, len(b) / 2, len(b) - 1} {
			if _, _, err := decode(b[:n]); err == nil {
				t.Errorf("truncated to %d of %d bytes: no error", n, len(b))
			}
		}
		for _, tamper := range []struct{ from, to string }{
			{`"format":"cl.head/1"`, `"format":"cl.head/9"`},
			{`"method":"`, `"method":"x`},
			{`"dim":"2"`, `"dim":"3"`},
			{`"classes":"[`, `"classes":"[\"z\",`},
		} {
			bad := bytes.Replace(b, []byte(tamper.from), []byte(tamper.to), 1)
			if bytes.Equal(bad, b) {
				t.Fatalf("tamper %s: not found in the file", tamper.from)
			}
			// Keep the header length consistent so the change reaches the loader.
			if _, _, err := decode(fixHeaderLen(bad, len(tamper.to)-len(tamper.from))); err == nil && tamper.from != `"classes":"[` {
				t.Errorf("tampered %s → %s: no error", tamper.from, tamper.to)
			}
		}
	}
	if _, _, err := Load(filepath.Join(t.TempDir(), "missing")); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing file: %v", err)
	}
}

// fixHeaderLen adds delta to the safetensors header length.
func fixHeaderLen(b []byte, delta int) []byte {
	out := append([]byte(nil), b...)
	n := int(out[0]) | int(out[1])<<8 | int(out[2])<<16 | int(out[3])<<24
	n += delta
	out[0], out[1], out[2], out[3] = byte(n), byte(n>>8), byte(n>>16), byte(n>>24)
	return out
}

func FuzzLoad(f *testing.F) {
	for _, b := range headBytes(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		h, _, err := decode(data)
		if err != nil {
			return
		}
		// Whatever loads must score without panicking.
		if h.Dim() > 0 && h.Dim() <= 64 && len(h.Classes()) > 0 {
			h.EndStage()
			h.Scores(make([]float32, h.Dim()))
		}
	})
}
