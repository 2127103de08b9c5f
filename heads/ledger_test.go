package heads

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cl-dev/cl/features"
	"github.com/cl-dev/cl/internal/safetensors"
)

// ledgerSet is a feature set of 2-d rows (i, label) with the given ids.
func ledgerSet(ids []string, labels []int) *features.Set {
	s := &features.Set{N: len(labels), D: 2, IDs: ids, Labels: labels, Classes: []string{"cat", "dog", "bird"}}
	for i, y := range labels {
		s.X = append(s.X, float32(i), float32(y))
	}
	return s
}

// rows returns the ledger rows of set learned as y.
func rows(t testing.TB, set *features.Set, y []int) LedgerRows {
	t.Helper()
	r, err := NewLedgerRows(set, y)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRowHash(t *testing.T) {
	// The definition: SHA-256 of the little-endian float32 bytes.
	// sha256 of 00 00 80 3f 00 00 00 40 ([1, 2]) computed with Python's
	// hashlib: hashlib.sha256(struct.pack('<2f', 1, 2)).hexdigest().
	h := RowHash([]float32{1, 2})
	const want = "b9c80b5adeca450753a16950c3cc655d271f7bef7a485bc83f112b72fef21d37"
	if got := hexOf(h[:]); got != want {
		t.Errorf("RowHash([1 2]) = %s, want %s", got, want)
	}
	if RowHash([]float32{0}) == RowHash([]float32{float32(math.Copysign(0, -1))}) {
		t.Error("+0 and −0 hash alike: the hash must follow the stored bytes")
	}
}

func hexOf(b []byte) string {
	const digits = "0123456789abcdef"
	var sb strings.Builder
	for _, c := range b {
		sb.WriteByte(digits[c>>4])
		sb.WriteByte(digits[c&15])
	}
	return sb.String()
}

func TestLedgerCheckNew(t *testing.T) {
	l := NewLedger()
	first := ledgerSet([]string{"a", "b"}, []int{0, 1})
	if err := l.CheckNew(rows(t, first, first.Labels)); err != nil {
		t.Fatal(err)
	}
	if l.Add(rows(t, first, first.Labels)); l.Len() != 2 {
		t.Fatalf("add: %d rows", l.Len())
	}
	// The same sample id again, whatever its values: refused, named.
	again := ledgerSet([]string{"c", "b"}, []int{0, 1})
	again.X[2] = 99
	if err := l.CheckNew(rows(t, again, again.Labels)); err == nil || !strings.Contains(err.Error(), `row 1 (sample "b") was already learned`) {
		t.Errorf("repeat: %v", err)
	}
	// A sample twice in one file.
	dup := ledgerSet([]string{"c", "d", "c"}, []int{0, 1, 0})
	if err := l.CheckNew(rows(t, dup, dup.Labels)); err == nil || !strings.Contains(err.Error(), `row 2 (sample "c") repeats row 0`) {
		t.Errorf("repeat within: %v", err)
	}
	// Rows without ids are told apart by class and content.
	anon := ledgerSet(nil, []int{0, 1})
	if err := l.CheckNew(rows(t, anon, anon.Labels)); err != nil {
		t.Fatal(err)
	}
	l.Add(rows(t, anon, anon.Labels))
	if err := l.CheckNew(rows(t, anon, anon.Labels)); err == nil || !strings.Contains(err.Error(), "row 0 (no sample id) was already learned") {
		t.Errorf("anonymous repeat: %v", err)
	}
	other := ledgerSet(nil, []int{0, 1})
	other.X[0] = 5
	if err := l.CheckNew(rows(t, other, other.Labels)); err == nil || !strings.Contains(err.Error(), "row 1") {
		t.Errorf("anonymous: row 1 is a repeat, row 0 is not: %v", err)
	}
}

func TestLedgerWithout(t *testing.T) {
	l := NewLedger()
	learned := ledgerSet([]string{"a", "b", "c"}, []int{0, 1, 1})
	l.Add(rows(t, learned, learned.Labels))
	names := []string{"cat", "dog", "bird"}
	sub, err := learned.Subset([]int{2, 0})
	if err != nil {
		t.Fatal(err)
	}
	// Subset renumbers classes: express them as the head's labels again.
	y := []int{1, 0}
	rest, err := l.Without(rows(t, sub, y), names)
	if err != nil {
		t.Fatal(err)
	}
	if rest.Len() != 1 || rest.entries[0].id != "b" || l.Len() != 3 {
		t.Fatalf("rest %+v, original %d rows", rest.entries, l.Len())
	}
	for name, tc := range map[string]struct {
		set  *features.Set
		want string
	}{
		"never learned": {ledgerSet([]string{"a", "z"}, []int{0, 1}), `row 1 (sample "z") was never learned`},
		"other class":   {ledgerSet([]string{"b"}, []int{2}), `row 0 (sample "b") has class "bird" but the head learned that sample as class "dog"`},
		// "b" was learned as row 1, values (1, 1); here it is (0, 1).
		"other values": {ledgerSet([]string{"b"}, []int{1}), `row 0 (sample "b") has other feature values`},
		"twice":        {ledgerSet([]string{"a", "a"}, []int{0, 0}), `row 1 (sample "a") is listed more often than the head learned it`},
		"no ids":       {ledgerSet(nil, []int{0}), "row 0 (no sample id) was never learned"},
		"nothing":      {ledgerSet([]string{"a"}, []int{0}), ""},
	} {
		_, err := l.Without(rows(t, tc.set, tc.set.Labels), names)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to mention %s", name, err, tc.want)
		}
	}
	if l.Len() != 3 {
		t.Fatalf("Without changed the ledger: %d rows", l.Len())
	}
	l.RemoveLabel(1)
	if l.Len() != 1 || l.entries[0].id != "a" {
		t.Fatalf("after RemoveLabel(1): %+v", l.entries)
	}
}

func TestLedgerDisjointRelabelMerge(t *testing.T) {
	a, b := NewLedger(), NewLedger()
	sa := ledgerSet([]string{"a", "b"}, []int{0, 1})
	sb := ledgerSet([]string{"c"}, []int{0})
	a.Add(rows(t, sa, sa.Labels))
	b.Add(rows(t, sb, sb.Labels))
	if err := a.CheckDisjoint(b); err != nil {
		t.Fatal(err)
	}
	if err := a.CheckDisjoint(a); err == nil || !strings.Contains(err.Error(), `both heads learned sample "a"`) {
		t.Errorf("a with itself: %v", err)
	}
	b.Relabel(map[int]int{0: 2})
	a.Merge(b)
	if a.Len() != 3 || a.entries[2].label != 2 || a.entries[2].id != "c" {
		t.Fatalf("merged %+v", a.entries)
	}
	anon := NewLedger()
	s := ledgerSet(nil, []int{1})
	anon.Add(rows(t, s, s.Labels))
	if err := anon.CheckDisjoint(anon); err == nil || !strings.Contains(err.Error(), "same row (no sample id") {
		t.Errorf("anonymous with itself: %v", err)
	}
}

// TestLedgerFile: a head file keeps its ledger through Save and Load; a file
// without one loads with none; a partial or inconsistent ledger is refused.
func TestLedgerFile(t *testing.T) {
	dir := t.TempDir()
	set := ledgerSet([]string{"a", "b", "ü/ç.png"}, []int{0, 2, 2})
	h := NewAPER()
	if err := h.Learn(set.X, set.Labels); err != nil {
		t.Fatal(err)
	}
	if err := h.EndStage(); err != nil {
		t.Fatal(err)
	}
	info := InfoFrom(set)
	info.Ledger = NewLedger()
	info.Ledger.Add(rows(t, set, set.Labels))
	path := filepath.Join(dir, "h.safetensors")
	if err := Save(path, h, info); err != nil {
		t.Fatal(err)
	}
	_, got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Ledger == nil || got.Ledger.Len() != 3 {
		t.Fatalf("ledger after load: %+v", got.Ledger)
	}
	for i, e := range got.Ledger.entries {
		if e != info.Ledger.entries[i] {
			t.Errorf("entry %d: %+v, want %+v", i, e, info.Ledger.entries[i])
		}
	}
	// No ledger: none saved, none loaded (files of older versions).
	info.Ledger = nil
	if err := Save(path, h, info); err != nil {
		t.Fatal(err)
	}
	if _, got, err := Load(path); err != nil || got.Ledger != nil {
		t.Fatalf("no ledger: %v %+v", err, got.Ledger)
	}
	// A ledger entry of a class the head does not score.
	info.Ledger = NewLedger()
	info.Ledger.Add(rows(t, set, []int{0, 1, 2}))
	if err := Save(path, h, info); err == nil || !strings.Contains(err.Error(), "class label 1") {
		t.Fatalf("inconsistent ledger saved: %v", err)
	}
	// A file missing part of the ledger.
	info.Ledger = NewLedger()
	info.Ledger.Add(rows(t, set, set.Labels))
	if err := Save(path, h, info); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Replace(b, []byte(`"ledger_ids"`), []byte(`"ledger_idx"`), 1)
	if _, _, err := decode(bad); err == nil || !strings.Contains(err.Error(), "only part of it") {
		t.Fatalf("partial ledger: %v", err)
	}
}

// TestLedgerRowsFrom: rows given as a flat [n, d] slice give the entries
// NewLedgerRows gives for the same feature set, each hashed by definition
// (RowHash of the row); rows without ids have id "". Shapes that do not
// fit are errors.
func TestLedgerRowsFrom(t *testing.T) {
	set := ledgerSet([]string{"a", "b", "c"}, []int{0, 2, 1})
	want := rows(t, set, set.Labels)
	got, err := NewLedgerRowsFrom(set.X, set.D, set.IDs, set.Labels)
	if err != nil {
		t.Fatal(err)
	}
	if got.Len() != 3 {
		t.Fatalf("%d rows, want 3", got.Len())
	}
	for i, e := range got.entries {
		if e != want.entries[i] {
			t.Errorf("row %d: %+v, want %+v", i, e, want.entries[i])
		}
		if e.hash != RowHash(set.Row(i)) || e.id != set.IDs[i] || e.label != set.Labels[i] {
			t.Errorf("row %d: %+v is not (id, label, RowHash) of the row", i, e)
		}
	}
	anon, err := NewLedgerRowsFrom(set.X, set.D, nil, set.Labels)
	if err != nil || anon.entries[1].id != "" || anon.entries[1].hash != want.entries[1].hash {
		t.Fatalf("rows without ids: %v %+v", err, anon.entries)
	}
	if _, err := NewLedgerRowsFrom(set.X[:5], set.D, nil, set.Labels); err == nil || !strings.Contains(err.Error(), "5 values for 3 rows of dimension 2") {
		t.Errorf("short x: %v", err)
	}
	if _, err := NewLedgerRowsFrom(set.X, set.D, []string{"a"}, set.Labels); err == nil || !strings.Contains(err.Error(), "1 sample ids for 3 rows") {
		t.Errorf("too few ids: %v", err)
	}
}

// TestLedgerEncodeDecode: Encode writes into any safetensors file exactly
// the ledger tensors and metadata a head file holds, DecodeLedger reads
// them back entry for entry, a file without them has no ledger, and Encode
// refuses a file that already has a ledger tensor.
func TestLedgerEncodeDecode(t *testing.T) {
	set := ledgerSet([]string{"a", "", "ü/ç.png"}, []int{0, 2, 2})
	l := NewLedger()
	l.Add(rows(t, set, set.Labels))

	f := safetensors.New()
	f.Tensors["head.w"] = safetensors.FromFloat32s([]int64{2}, []float32{1, 2})
	f.Metadata["format"] = "other"
	if err := l.Encode(f); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := f.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	back, err := safetensors.Parse(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeLedger(back)
	if err != nil || got == nil || got.Len() != l.Len() {
		t.Fatalf("decoded %v %+v", err, got)
	}
	for i := range l.Len() {
		id, y, h := got.Entry(i)
		wid, wy, wh := l.Entry(i)
		if id != wid || y != wy || h != wh {
			t.Errorf("entry %d: (%q %d %x), want (%q %d %x)", i, id, y, h[:4], wid, wy, wh[:4])
		}
	}

	// The same bytes as a head file's ledger.
	h := NewAPER()
	if err := h.Learn(set.X, set.Labels); err != nil {
		t.Fatal(err)
	}
	info := InfoFrom(set)
	info.Ledger = l
	hf, err := encode(h, info)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range ledgerTensors {
		a, b := f.Tensors[n], hf.Tensors[n]
		if a.DType != b.DType || !slices.Equal(a.Shape, b.Shape) || !bytes.Equal(a.Data, b.Data) {
			t.Errorf("tensor %s: Encode wrote %v %v, the head file has %v %v", n, a.DType, a.Shape, b.DType, b.Shape)
		}
	}
	if f.Metadata[ledgerIDsKey] != hf.Metadata[ledgerIDsKey] || f.Metadata[ledgerIDsKey] != `["a","","ü/ç.png"]` {
		t.Errorf("ids %s, head file %s", f.Metadata[ledgerIDsKey], hf.Metadata[ledgerIDsKey])
	}

	// No ledger: nothing written, nothing read.
	empty := safetensors.New()
	var none *Ledger
	if err := none.Encode(empty); err != nil || len(empty.Tensors) != 0 || len(empty.Metadata) != 0 {
		t.Fatalf("nil ledger encoded: %v %v %v", err, empty.Tensors, empty.Metadata)
	}
	if got, err := DecodeLedger(empty); err != nil || got != nil {
		t.Fatalf("file without a ledger: %v %+v", err, got)
	}
	// A file that has a ledger tensor already.
	if err := l.Encode(f); err == nil || !strings.Contains(err.Error(), `"ledger.labels"`) {
		t.Fatalf("encoding twice: %v", err)
	}
}

// TestHeadFileClassNames: repeated class names are refused on saving and on
// loading (they would merge two classes).
func TestHeadFileClassNames(t *testing.T) {
	set := ledgerSet([]string{"a", "b"}, []int{0, 1})
	h := NewAPER()
	if err := h.Learn(set.X, set.Labels); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "h.safetensors")
	if err := Save(path, h, Info{Classes: []string{"cat", "cat"}}); err == nil || !strings.Contains(err.Error(), "listed twice") {
		t.Fatalf("save: %v", err)
	}
	if err := Save(path, h, Info{Classes: []string{"cat", "dog"}}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Replace(b, []byte(`[\"cat\",\"dog\"]`), []byte(`[\"cat\",\"cat\"]`), 1)
	if bytes.Equal(bad, b) {
		t.Fatal("class list not found")
	}
	if _, _, err := decode(bad); err == nil || !strings.Contains(err.Error(), `"cat" is listed twice`) {
		t.Fatalf("load: %v", err)
	}
}

// TestAPERConcatByID: APER fitted on features.ConcatByID of two files scores
// the cosine between a row's concatenation [a; b] and the class means of
// the concatenations (the definition, computed here directly).
func TestAPERConcatByID(t *testing.T) {
	classes := []string{"cat", "dog"}
	a := &features.Set{N: 4, D: 2, IDs: []string{"w", "x", "y", "z"}, Labels: []int{0, 1, 0, 1}, Classes: classes,
		X: []float32{1, 0, 0, 1, 2, 1, -1, 3}}
	// b lists the samples in another order.
	b := &features.Set{N: 4, D: 3, IDs: []string{"z", "y", "x", "w"}, Labels: []int{1, 0, 1, 0}, Classes: classes,
		X: []float32{4, 0, 1, 0, 2, 2, 1, 1, 1, 3, 0, 0}}
	c, err := features.ConcatByID(a, b)
	if err != nil {
		t.Fatal(err)
	}
	h := NewAPER()
	if err := h.Learn(c.X, c.Labels); err != nil {
		t.Fatal(err)
	}
	if err := h.EndStage(); err != nil {
		t.Fatal(err)
	}
	scores, err := h.Scores(c.X)
	if err != nil {
		t.Fatal(err)
	}
	// By hand: row i of c is a.Row(i) ++ b.Row(j) with b.IDs[j] == a.IDs[i].
	bRow := map[string][]float32{}
	for j, id := range b.IDs {
		bRow[id] = b.Row(j)
	}
	phi := make([][]float64, a.N)
	for i := range phi {
		for _, v := range append(append([]float32(nil), a.Row(i)...), bRow[a.IDs[i]]...) {
			phi[i] = append(phi[i], float64(v))
		}
	}
	means := make([][]float64, 2)
	for k := range means {
		means[k] = make([]float64, 5)
		n := 0.0
		for i, y := range a.Labels {
			if y == k {
				n++
				for j := range phi[i] {
					means[k][j] += phi[i][j]
				}
			}
		}
		for j := range means[k] {
			means[k][j] /= n
		}
	}
	cos := func(u, v []float64) float64 {
		var uv, uu, vv float64
		for j := range u {
			uv += u[j] * v[j]
			uu += u[j] * u[j]
			vv += v[j] * v[j]
		}
		return uv / math.Sqrt(uu*vv)
	}
	for i := range phi {
		for k := range means {
			if want := cos(phi[i], means[k]); math.Abs(scores[2*i+k]-want) > 1e-12 {
				t.Errorf("row %d class %d: score %v, want %v", i, k, scores[2*i+k], want)
			}
		}
	}
}

// FuzzLoadLedger: head files with a ledger, tampered, load or fail with an
// error, never a panic; whatever loads has a ledger consistent with its head.
func FuzzLoadLedger(f *testing.F) {
	set := ledgerSet([]string{"a", "b", ""}, []int{0, 2, 2})
	h := NewAPER()
	if err := h.Learn(set.X, set.Labels); err != nil {
		f.Fatal(err)
	}
	info := InfoFrom(set)
	info.Ledger = NewLedger()
	info.Ledger.Add(rows(f, set, set.Labels))
	file, err := encode(h, info)
	if err != nil {
		f.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := file.WriteTo(&buf); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		h, info, err := decode(data)
		if err != nil || info.Ledger == nil {
			return
		}
		if err := info.Ledger.check(h, h.Dim()); err != nil {
			t.Fatalf("loaded an inconsistent ledger: %v", err)
		}
	})
}

// BenchmarkLedgerAddWithout: ledger work per fit/forget of 10,000 rows of
// D = 768 (hashing dominates: 30 MB of features).
func BenchmarkLedgerAddWithout(b *testing.B) {
	const n, d = 10000, 768
	set := &features.Set{N: n, D: d, X: make([]float32, n*d), Labels: make([]int, n), Classes: []string{"c"}, IDs: make([]string, n)}
	for i := range set.X {
		set.X[i] = float32(i%977) / 977
	}
	for i := range set.IDs {
		set.IDs[i] = "train-images-idx3-ubyte.gz:" + strings.Repeat("9", 5) + string(rune('a'+i%26)) + hexOf([]byte{byte(i), byte(i >> 8)})
	}
	b.SetBytes(int64(4 * n * d))
	for i := 0; i < b.N; i++ {
		l := NewLedger()
		r := rows(b, set, set.Labels)
		if err := l.CheckNew(r); err != nil {
			b.Fatal(err)
		}
		l.Add(r)
		if _, err := l.Without(r, set.Classes); err != nil {
			b.Fatal(err)
		}
	}
}
