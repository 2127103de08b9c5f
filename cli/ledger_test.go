package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cl-dev/cl/features"
	"github.com/cl-dev/cl/heads"
)

// fileBytes reads a file, for "nothing was changed" checks.
func fileBytes(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFitRefusesRepeats: fitting the same rows twice is refused by default
// (naming the row) and leaves the head as it was; --allow-repeats learns
// them again, which counts them twice (the prototypes stay the same, the
// ledger holds the rows twice). Rows repeated within one file are refused too.
func TestFitRefusesRepeats(t *testing.T) {
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	names := classNames(4)
	a := writeClusters(t, p("a.safetensors"), names, []int{0, 1}, 3, 8, 0, "mnv2")
	if _, _, err := runHeadsCL("fit", "--method", "simplecil", "--features", p("a.safetensors"), "--head", p("h.safetensors")); err != nil {
		t.Fatal(err)
	}
	before := fileBytes(t, p("h.safetensors"))
	_, _, err := runHeadsCL("fit", "--features", p("a.safetensors"), "--head", p("h.safetensors"))
	if err == nil || !strings.Contains(err.Error(), `row 0 (sample "class00/0/0") was already learned`) || !strings.Contains(err.Error(), "--allow-repeats") {
		t.Fatalf("fitting the same file again: %v", err)
	}
	if !bytes.Equal(before, fileBytes(t, p("h.safetensors"))) {
		t.Fatal("a refused fit changed the head")
	}
	if _, _, err := runHeadsCL("fit", "--features", p("a.safetensors"), "--head", p("h.safetensors"), "--allow-repeats"); err != nil {
		t.Fatalf("--allow-repeats: %v", err)
	}
	_, info, err := heads.Load(p("h.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	if info.Ledger.Len() != 2*a.N {
		t.Errorf("ledger holds %d rows after learning %d rows twice", info.Ledger.Len(), a.N)
	}
	// One row twice in a file.
	dup := *a
	dup.X = append(append([]float32(nil), a.X...), a.Row(0)...)
	dup.Labels = append(append([]int(nil), a.Labels...), a.Labels[0])
	dup.IDs = append(append([]string(nil), a.IDs...), a.IDs[0])
	dup.N++
	if err := dup.Write(p("dup.safetensors")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runHeadsCL("fit", "--method", "simplecil", "--features", p("dup.safetensors"), "--head", p("h2.safetensors")); err == nil ||
		!strings.Contains(err.Error(), `row 6 (sample "class00/0/0") repeats row 0`) {
		t.Fatalf("repeat within a file: %v", err)
	}
	if _, err := os.Stat(p("h2.safetensors")); !os.IsNotExist(err) {
		t.Errorf("a refused fit created the head: %v", err)
	}
}

// TestForgetRefusesUnlearnedRows: cl forget --features with a row the head
// never learned (another sample, another class, other values) refuses the
// whole request, names the row and leaves the head unchanged; forgetting
// learned rows works once, and a second time is refused.
func TestForgetRefusesUnlearnedRows(t *testing.T) {
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	names := classNames(6)
	writeClusters(t, p("a.safetensors"), names, []int{0, 1, 2}, 4, 8, 0, "mnv2")
	writeClusters(t, p("b.safetensors"), names, []int{3, 4, 5}, 4, 8, 0.02, "mnv2")
	writeClusters(t, p("test.safetensors"), names, nil, 2, 8, 0.01, "mnv2")
	for _, f := range []string{"a", "b"} {
		if _, _, err := runHeadsCL("fit", "--method", "ncm", "--features", p(f+".safetensors"), "--head", p("h.safetensors")); err != nil {
			t.Fatal(err)
		}
	}
	before := fileBytes(t, p("h.safetensors"))
	// test.safetensors: the same classes, rows never learned.
	_, _, err := runHeadsCL("forget", "--head", p("h.safetensors"), "--features", p("test.safetensors"))
	if err == nil || !strings.Contains(err.Error(), `row 0 (sample "class00/0/1") was never learned`) || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("forget of unlearned rows: %v", err)
	}
	// Learned samples with other values (re-extracted), or another class.
	b := mustRead(t, p("b.safetensors"))
	edited := *b
	edited.X = append([]float32(nil), b.X...)
	edited.X[5*b.D] += 1
	if err := edited.Write(p("edited.safetensors")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runHeadsCL("forget", "--head", p("h.safetensors"), "--features", p("edited.safetensors")); err == nil ||
		!strings.Contains(err.Error(), `row 5 (sample "class04/1/2") has other feature values`) {
		t.Fatalf("forget of edited rows: %v", err)
	}
	relabelled := *b
	relabelled.Labels = append([]int(nil), b.Labels...)
	relabelled.Labels[2] = 0
	if err := relabelled.Write(p("relabelled.safetensors")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runHeadsCL("forget", "--head", p("h.safetensors"), "--features", p("relabelled.safetensors")); err == nil ||
		!strings.Contains(err.Error(), `row 2 (sample "class03/2/2") has class "class00" but the head learned that sample as class "class03"`) {
		t.Fatalf("forget with another class: %v", err)
	}
	if !bytes.Equal(before, fileBytes(t, p("h.safetensors"))) {
		t.Fatal("a refused forget changed the head")
	}
	// Forgetting B's rows leaves the head fitted on A alone (same scores).
	if _, _, err := runHeadsCL("forget", "--head", p("h.safetensors"), "--features", p("b.safetensors")); err != nil {
		t.Fatal(err)
	}
	runHeadsCL("fit", "--method", "ncm", "--features", p("a.safetensors"), "--head", p("ha.safetensors"))
	ra, rb := evalJSON(t, p("h.safetensors"), p("test.safetensors")), evalJSON(t, p("ha.safetensors"), p("test.safetensors"))
	ra.Head, rb.Head = "", ""
	if ra.Top1 != rb.Top1 || ra.Rows != rb.Rows || ra.Unknown != rb.Unknown {
		t.Errorf("after forgetting B: %+v, head on A: %+v", ra, rb)
	}
	if _, _, err := runHeadsCL("forget", "--head", p("h.safetensors"), "--features", p("b.safetensors")); err == nil || !strings.Contains(err.Error(), "never learned") {
		t.Errorf("forgetting B twice: %v", err)
	}
	// forget --class drops the class's ledger entries with it.
	if _, _, err := runHeadsCL("forget", "--head", p("h.safetensors"), "--class", "class01"); err != nil {
		t.Fatal(err)
	}
	if _, info, err := heads.Load(p("h.safetensors")); err != nil || info.Ledger.Len() != 8 {
		t.Errorf("ledger after forget --class: %v, %d rows (want 8)", err, info.Ledger.Len())
	}
	// A head without a ledger (older cl) cannot check: refused with advice.
	h, info, err := heads.Load(p("ha.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	info.Ledger = nil
	if err := heads.Save(p("old.safetensors"), h, info); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runHeadsCL("forget", "--head", p("old.safetensors"), "--features", p("a.safetensors")); err == nil || !strings.Contains(err.Error(), "keeps no ledger") {
		t.Errorf("forget on a head without a ledger: %v", err)
	}
}

// TestMergeRefusesSharedSamples: a head merged with itself, or with a head
// that learned some of the same samples, is refused; heads of disjoint
// samples merge and their ledgers join (forgetting B's rows afterwards works).
func TestMergeRefusesSharedSamples(t *testing.T) {
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	names := classNames(4)
	writeClusters(t, p("a.safetensors"), names, []int{0, 1}, 3, 8, 0, "mnv2")
	writeClusters(t, p("b.safetensors"), names, []int{2, 3}, 3, 8, 0.02, "mnv2")
	writeClusters(t, p("ab.safetensors"), names, []int{1, 2}, 3, 8, 0.02, "mnv2") // class02 rows = b's
	for _, f := range []string{"a", "b", "ab"} {
		if _, _, err := runHeadsCL("fit", "--method", "simplecil", "--features", p(f+".safetensors"), "--head", p("h"+f+".safetensors")); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := runHeadsCL("merge", p("ha.safetensors"), p("ha.safetensors"), "--out", p("x.safetensors")); err == nil || !strings.Contains(err.Error(), "same head file") {
		t.Errorf("merge A A: %v", err)
	}
	if err := os.WriteFile(p("copy.safetensors"), fileBytes(t, p("ha.safetensors")), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runHeadsCL("merge", p("ha.safetensors"), p("copy.safetensors"), "--out", p("x.safetensors")); err == nil ||
		!strings.Contains(err.Error(), `both heads learned sample "class00/0/0"`) {
		t.Errorf("merge A copy-of-A: %v", err)
	}
	if _, _, err := runHeadsCL("merge", p("hb.safetensors"), p("hab.safetensors"), "--out", p("x.safetensors")); err == nil ||
		!strings.Contains(err.Error(), `both heads learned sample "class02/0/2"`) {
		t.Errorf("merge of heads sharing class02's samples: %v", err)
	}
	if _, err := os.Stat(p("x.safetensors")); !os.IsNotExist(err) {
		t.Errorf("a refused merge wrote its output: %v", err)
	}
	if _, _, err := runHeadsCL("merge", p("ha.safetensors"), p("hb.safetensors"), "--out", p("m.safetensors")); err != nil {
		t.Fatal(err)
	}
	if _, info, err := heads.Load(p("m.safetensors")); err != nil || info.Ledger.Len() != 12 {
		t.Fatalf("merged ledger: %v %+v", err, info.Ledger)
	}
	if _, _, err := runHeadsCL("forget", "--head", p("m.safetensors"), "--features", p("b.safetensors")); err != nil {
		t.Errorf("forgetting B's rows after the merge: %v", err)
	}
}

// TestFitFingerprint: features whose fingerprint matches the head's are
// accepted even from another model file (a re-cut with another description);
// another fingerprint is refused; a head written before fingerprints takes
// the fingerprint of the first current file of its model.
func TestFitFingerprint(t *testing.T) {
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	names := classNames(4)
	a := writeClusters(t, p("a.safetensors"), names, []int{0, 1}, 2, 8, 0, "mnv2") // no fingerprint (older file)
	if _, _, err := runHeadsCL("fit", "--method", "simplecil", "--features", p("a.safetensors"), "--head", p("h.safetensors")); err != nil {
		t.Fatal(err)
	}
	write := func(name string, keep []int, shift float32, mutate func(s *features.Set)) {
		s := writeClusters(t, p(name), names, keep, 2, 8, shift, "mnv2")
		mutate(s)
		if err := s.Write(p(name)); err != nil {
			t.Fatal(err)
		}
	}
	write("b.safetensors", []int{2}, 0.02, func(s *features.Set) { s.Fingerprint = "fp1" })
	if _, _, err := runHeadsCL("fit", "--features", p("b.safetensors"), "--head", p("h.safetensors")); err != nil {
		t.Fatalf("current file of the head's model: %v", err)
	}
	if _, info, err := heads.Load(p("h.safetensors")); err != nil || info.Fingerprint != "fp1" {
		t.Fatalf("head did not adopt the fingerprint: %v %q", err, info.Fingerprint)
	}
	// Another model file (name, hash) with the same fingerprint: accepted.
	write("c.safetensors", []int{3}, 0.03, func(s *features.Set) {
		s.Fingerprint, s.Model, s.ModelSHA256 = "fp1", "recut.onnx", strings.Repeat("9", 64)
	})
	if _, _, err := runHeadsCL("fit", "--features", p("c.safetensors"), "--head", p("h.safetensors")); err != nil {
		t.Fatalf("same fingerprint, other file: %v", err)
	}
	// Same model file, another fingerprint: refused.
	write("d.safetensors", []int{3}, 0.04, func(s *features.Set) { s.Fingerprint = "fp2" })
	if _, _, err := runHeadsCL("fit", "--features", p("d.safetensors"), "--head", p("h.safetensors")); err == nil || !strings.Contains(err.Error(), "fingerprint fp2") {
		t.Fatalf("other fingerprint: %v", err)
	}
	_ = a
}
