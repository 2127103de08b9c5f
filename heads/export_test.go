package heads

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cl-dev/cl/internal/safetensors"
)

var exportCases = append(slices.Clone(propertyCases),
	methodCase{"ranpac-auto-cosine", "ranpac", map[string]string{"M": "300"}},
	methodCase{"ranpac-linear", "ranpac", map[string]string{"M": "200", "lambda": "0.5", "scoring": "linear"}},
	methodCase{"ranpac-M0", "ranpac", map[string]string{"M": "0", "lambda": "1"}},
	methodCase{"ranpac-class_gram", "ranpac", map[string]string{"M": "100", "lambda": "1", "class_gram": "true"}},
	methodCase{"joint", "joint", map[string]string{"iterations": "20"}},
)

// TestExport: for every head kind, the exported head (in memory and loaded
// from its file) scores and ranks bit for bit as the full head (in memory
// and loaded), refuses every learning operation with ErrInferenceOnly, and
// its file is marked inference-only and is not larger than the full one
// (but for the marker).
func TestExport(t *testing.T) {
	g := loadGolden(t)
	names := make([]string, g.c)
	for i := range names {
		names[i] = string(rune('a' + i))
	}
	info := Info{Classes: names, Model: "vit.onnx", ModelSHA256: "abc123", Preprocess: `{"resize":256}`, Fingerprint: "fp1"}
	for _, tc := range exportCases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHead(t, tc.method, tc.opts)
			fit(t, h, g.xtr, g.ytr, g.d)
			dir := t.TempDir()
			full, exp := filepath.Join(dir, "full.safetensors"), filepath.Join(dir, "exp.safetensors")
			if err := Save(full, h, info); err != nil {
				t.Fatal(err)
			}
			e, err := Export(h)
			if err != nil {
				t.Fatal(err)
			}
			if !InferenceOnly(e) || InferenceOnly(h) {
				t.Fatalf("InferenceOnly: export %v, full %v", InferenceOnly(e), InferenceOnly(h))
			}
			if err := Save(exp, e, info); err != nil {
				t.Fatal(err)
			}
			hf, _, err := Load(full)
			if err != nil {
				t.Fatal(err)
			}
			el, info2, err := Load(exp)
			if err != nil {
				t.Fatal(err)
			}
			if !InferenceOnly(el) || el.Method() != tc.method || el.Dim() != g.d || info2.Fingerprint != "fp1" ||
				!slices.Equal(info2.Classes, names) || !slices.Equal(el.Classes(), h.Classes()) {
				t.Fatalf("loaded export: %s dim %d classes %v info %+v", el.Method(), el.Dim(), el.Classes(), info2)
			}
			f, err := safetensors.ReadFile(exp)
			if err != nil {
				t.Fatal(err)
			}
			for _, drop := range map[string][]string{"ranpac": {"G", "Q", "losses", "stage_x", "stage_y", "class_gram"}, "lda": {"scatter"}}[tc.method] {
				if _, ok := f.Tensors[drop]; ok {
					t.Errorf("the exported %s head keeps %q", tc.method, drop)
				}
			}
			if f.Metadata[InferenceOnlyKey] != InferenceOnlyValue {
				t.Errorf("metadata %s = %q", InferenceOnlyKey, f.Metadata[InferenceOnlyKey])
			}
			want, err := h.Scores(g.xte)
			if err != nil {
				t.Fatal(err)
			}
			n := len(g.xte) / g.d
			k := min(3, len(h.Classes()))
			wantTop, _, err := Rank(context.Background(), h, g.xte, g.d, k, 0)
			if err != nil {
				t.Fatal(err)
			}
			for name, x := range map[string]Head{"full loaded": hf, "export": e, "export loaded": el} {
				got, err := x.Scores(g.xte)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if len(got) != len(want) {
					t.Fatalf("%s: %d scores, want %d", name, len(got), len(want))
				}
				for i := range got {
					if got[i] != want[i] {
						t.Fatalf("%s: score [%d, %d] = %v, full head %v", name, i/len(h.Classes()), i%len(h.Classes()), got[i], want[i])
					}
				}
				top, _, err := Rank(context.Background(), x, g.xte, g.d, k, 0)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(top, wantTop) {
					t.Fatalf("%s: top-%d of %d rows differ from the full head's", name, k, n)
				}
				_, ranks := x.(Ranker)
				_, fullRanks := h.(Ranker)
				if ranks != fullRanks {
					t.Errorf("%s: Ranker %v, full head %v", name, ranks, fullRanks)
				}
			}
			for op, err := range map[string]error{
				"Learn":       el.Learn(g.xtr[:g.d], g.ytr[:1]),
				"Unlearn":     el.Unlearn(g.xtr[:g.d], g.ytr[:1]),
				"RemoveClass": el.RemoveClass(el.Classes()[0]),
				"Merge":       el.Merge(hf),
				"EndStage":    el.EndStage(),
				"Refresh":     Refresh(el),
			} {
				if !errors.Is(err, ErrInferenceOnly) || !strings.Contains(err.Error(), "learn with the full head file") {
					t.Errorf("%s on the exported head: %v, want ErrInferenceOnly", op, err)
				}
			}
			if err := hf.Merge(el); err == nil {
				t.Error("merging an exported head into a full one succeeded")
			}
			// The refusals changed nothing.
			got, err := el.Scores(g.xte)
			if err != nil || !slices.Equal(got, want) {
				t.Fatalf("scores after refused changes differ (%v)", err)
			}
			// Saving the loaded export again gives the same inference-only file.
			again := filepath.Join(dir, "again.safetensors")
			if err := Save(again, el, info2); err != nil {
				t.Fatal(err)
			}
			a, _ := os.ReadFile(again)
			b, _ := os.ReadFile(exp)
			if string(a) != string(b) {
				t.Error("re-saving the loaded export changed the file")
			}
			fs, _ := os.Stat(full)
			es, _ := os.Stat(exp)
			if es.Size() > fs.Size()+64 { // the marker adds a few bytes of metadata
				t.Errorf("export %d bytes > full %d bytes", es.Size(), fs.Size())
			}
			t.Logf("%s: full %d bytes, exported %d bytes (%.3f)", tc.name, fs.Size(), es.Size(), float64(es.Size())/float64(fs.Size()))
		})
	}
}

// TestExportRanPACSize measures the file size ratio at M = 2000 (the Gram
// matrix alone is 2000² × 8 bytes = 32 MB) and checks that the export holds
// no G or Q.
func TestExportRanPACSize(t *testing.T) {
	g := loadGolden(t)
	names := make([]string, g.c)
	for i := range names {
		names[i] = string(rune('a' + i))
	}
	h := newHead(t, "ranpac", map[string]string{"M": "2000", "lambda": "1"})
	fit(t, h, g.xtr, g.ytr, g.d)
	dir := t.TempDir()
	full, exp := filepath.Join(dir, "full.safetensors"), filepath.Join(dir, "exp.safetensors")
	if err := Save(full, h, Info{Classes: names}); err != nil {
		t.Fatal(err)
	}
	e, err := Export(h)
	if err != nil {
		t.Fatal(err)
	}
	if err := Save(exp, e, Info{Classes: names}); err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.ReadFile(exp)
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for n := range f.Tensors {
		kept = append(kept, n)
	}
	slices.Sort(kept)
	if !slices.Equal(kept, []string{"Wo", "classes", "counts"}) {
		t.Errorf("exported tensors %v, want [Wo classes counts]", kept)
	}
	fs, _ := os.Stat(full)
	es, _ := os.Stat(exp)
	c := len(h.Classes())
	if want := int64(2000 * c * 8); es.Size() < want || es.Size() > want+8192 {
		t.Errorf("export is %d bytes; W_o alone is %d", es.Size(), want)
	}
	t.Logf("RanPAC M=2000 D=%d C=%d: full %d bytes, exported %d bytes, ratio %.5f (%.0f× smaller)",
		g.d, c, fs.Size(), es.Size(), float64(es.Size())/float64(fs.Size()), float64(fs.Size())/float64(es.Size()))
}

// TestExportRefusesUnsolved: an unsolved or empty head cannot be exported.
func TestExportRefusesUnsolved(t *testing.T) {
	g := loadGolden(t)
	h := newHead(t, "ranpac", map[string]string{"M": "50", "lambda": "1"})
	if _, err := Export(h); err == nil {
		t.Error("exporting an empty head succeeded")
	}
	if err := h.Learn(g.xtr, g.ytr); err != nil {
		t.Fatal(err)
	}
	if _, err := Export(h); err == nil || !strings.Contains(err.Error(), "not solved") {
		t.Errorf("exporting an unsolved RanPAC: %v", err)
	}
}
