package heads

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"runtime"
	"strings"
	"sync"

	"github.com/cl-dev/cl/features"
	"github.com/cl-dev/cl/internal/safetensors"
)

// Ledger records which rows a head learned, one entry per learned row: the
// row's sample id, the head label it was learned as, and the SHA-256 of its
// D float32 values (little-endian bytes). With it a head file can refuse to
// unlearn rows it never learned (exact unlearning of anything else corrupts
// the statistics silently), to learn a sample twice, and to merge with a
// head that learned some of the same samples.
//
// A sample is identified by its id; rows without an id (feature files
// written before ids) are identified by their label and content hash.
//
// In a head file the ledger is the tensors "ledger.labels" I64 [n] and
// "ledger.sha256" U8 [n, 32] and the metadata "ledger_ids" (JSON array of n
// ids). A file without them has no ledger (Info.Ledger == nil). Learner
// files keep their head's ledger in the same layout (Encode, DecodeLedger).
type Ledger struct {
	entries []ledgerEntry
}

type ledgerEntry struct {
	id    string
	label int
	hash  [32]byte
}

// NewLedger returns an empty ledger (a head that has learned nothing).
func NewLedger() *Ledger { return &Ledger{} }

// Len is the number of learned rows recorded.
func (l *Ledger) Len() int { return len(l.entries) }

// Entry returns entry i (0 ≤ i < Len), in learning order: the sample id
// ("" for a row without one), the head label and the row's content hash
// (RowHash).
func (l *Ledger) Entry(i int) (id string, label int, hash [32]byte) {
	e := l.entries[i]
	return e.id, e.label, e.hash
}

// RowHash is the content hash of one feature row: SHA-256 of its float32
// values as little-endian bytes.
func RowHash(row []float32) [32]byte { return rowHash(make([]byte, 4*len(row)), row) }

// rowHash is RowHash with a scratch buffer of 4·len(row) bytes.
func rowHash(buf []byte, row []float32) [32]byte {
	for j, v := range row {
		binary.LittleEndian.PutUint32(buf[4*j:], math.Float32bits(v))
	}
	return sha256.Sum256(buf[:4*len(row)])
}

// sampleKey identifies a sample: its id, or, without one, its label and
// content.
type sampleKey struct {
	id    string
	label int
	hash  [32]byte
}

func keyOf(e ledgerEntry) sampleKey {
	if e.id != "" {
		return sampleKey{id: e.id}
	}
	return sampleKey{label: e.label, hash: e.hash}
}

// LedgerRows are the ledger entries of the rows of one feature set: what
// CheckNew, Add and Without take. Building them hashes every row once (in
// parallel), so a command checks and then records the same rows without
// hashing twice.
type LedgerRows struct{ entries []ledgerEntry }

// NewLedgerRows returns the entries of set's rows, learned (or to be
// unlearned) as head labels y, one per row.
func NewLedgerRows(set *features.Set, y []int) (LedgerRows, error) {
	if len(y) != set.N {
		return LedgerRows{}, fmt.Errorf("ledger: %d labels for %d rows", len(y), set.N)
	}
	return NewLedgerRowsFrom(set.X, set.D, set.IDs, y)
}

// NewLedgerRowsFrom returns the entries of the rows x, row-major [n, d]
// float32 with n = len(y), learned as head labels y [n]. ids are the n
// sample ids, or nil for rows without one. It is NewLedgerRows for rows
// that are not a features.Set (a learner's features of its images).
func NewLedgerRowsFrom(x []float32, d int, ids []string, y []int) (LedgerRows, error) {
	n := len(y)
	if d < 0 || len(x) != n*d {
		return LedgerRows{}, fmt.Errorf("ledger: %d values for %d rows of dimension %d", len(x), n, d)
	}
	if ids != nil && len(ids) != n {
		return LedgerRows{}, fmt.Errorf("ledger: %d sample ids for %d rows", len(ids), n)
	}
	out := make([]ledgerEntry, n)
	workers := min(runtime.GOMAXPROCS(0), max(1, n/256))
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(lo, hi int) {
			defer wg.Done()
			buf := make([]byte, 4*d)
			for i := lo; i < hi; i++ {
				out[i] = ledgerEntry{label: y[i], hash: rowHash(buf, x[i*d:(i+1)*d])}
				if ids != nil {
					out[i].id = ids[i]
				}
			}
		}(w*n/workers, (w+1)*n/workers)
	}
	wg.Wait()
	return LedgerRows{out}, nil
}

// Len is the number of rows.
func (r LedgerRows) Len() int { return len(r.entries) }

// describeRow names row i in errors.
func (r LedgerRows) describeRow(i int) string {
	if id := r.entries[i].id; id != "" {
		return fmt.Sprintf("row %d (sample %q)", i, id)
	}
	return fmt.Sprintf("row %d (no sample id)", i)
}

// CheckNew refuses rows whose sample the ledger already holds, or that
// occur twice among rows: learning them would count them twice. The error
// names the first such row.
func (l *Ledger) CheckNew(r LedgerRows) error {
	rows := r.entries
	have := make(map[sampleKey]bool, len(l.entries))
	for _, e := range l.entries {
		have[keyOf(e)] = true
	}
	first := make(map[sampleKey]int, len(rows))
	for i, e := range rows {
		k := keyOf(e)
		if have[k] {
			return fmt.Errorf("%s was already learned by the head", r.describeRow(i))
		}
		if j, dup := first[k]; dup {
			return fmt.Errorf("%s repeats row %d: the sample would be learned twice", r.describeRow(i), j)
		}
		first[k] = i
	}
	return nil
}

// Add records rows as learned.
func (l *Ledger) Add(r LedgerRows) { l.entries = append(l.entries, r.entries...) }

// Without returns a new ledger without rows, one recorded entry per row, and
// leaves l as it is. Every row must have been learned: same sample, same
// class, same values. Otherwise it returns an error naming the first row
// that was not (classes names the head's labels in the message), so that
// nothing is unlearned.
func (l *Ledger) Without(r LedgerRows, classes []string) (*Ledger, error) {
	rows := r.entries
	byKey := make(map[sampleKey][]int, len(l.entries))
	for i, e := range l.entries {
		k := keyOf(e)
		byKey[k] = append(byKey[k], i)
	}
	gone := make([]bool, len(l.entries))
	name := func(label int) string {
		if label >= 0 && label < len(classes) {
			return fmt.Sprintf("%q", classes[label])
		}
		return fmt.Sprint(label)
	}
	for i, e := range rows {
		cands := byKey[keyOf(e)]
		match, other := -1, -1
		for _, c := range cands {
			if gone[c] {
				continue
			}
			if le := l.entries[c]; le.label == e.label && le.hash == e.hash {
				match = c
				break
			}
			other = c
		}
		if match < 0 {
			switch {
			case other >= 0 && l.entries[other].label != e.label:
				return nil, fmt.Errorf("%s has class %s but the head learned that sample as class %s", r.describeRow(i), name(e.label), name(l.entries[other].label))
			case other >= 0:
				return nil, fmt.Errorf("%s has other feature values than the row the head learned for that sample (re-extracted or edited?)", r.describeRow(i))
			case len(cands) > 0:
				return nil, fmt.Errorf("%s is listed more often than the head learned it", r.describeRow(i))
			default:
				return nil, fmt.Errorf("%s was never learned by the head", r.describeRow(i))
			}
		}
		gone[match] = true
	}
	out := &Ledger{entries: make([]ledgerEntry, 0, len(l.entries)-len(rows))}
	for i, e := range l.entries {
		if !gone[i] {
			out.entries = append(out.entries, e)
		}
	}
	return out, nil
}

// RemoveLabel drops the entries of one class (cl forget --class).
func (l *Ledger) RemoveLabel(label int) {
	kept := l.entries[:0]
	for _, e := range l.entries {
		if e.label != label {
			kept = append(kept, e)
		}
	}
	l.entries = kept
}

// Relabel renumbers entries as Relabel renumbers a head: label k becomes
// to[k] (labels missing from to stay).
func (l *Ledger) Relabel(to map[int]int) {
	for i, e := range l.entries {
		if t, ok := to[e.label]; ok {
			l.entries[i].label = t
		}
	}
}

// CheckDisjoint refuses two ledgers that share a sample (a head merged with
// itself, or with a head learned partly from the same rows): merging them
// would count those rows twice. Both must number classes alike (Relabel
// first). The error names the first shared sample.
func (l *Ledger) CheckDisjoint(o *Ledger) error {
	have := make(map[sampleKey]bool, len(l.entries))
	for _, e := range l.entries {
		have[keyOf(e)] = true
	}
	for _, e := range o.entries {
		if have[keyOf(e)] {
			if e.id != "" {
				return fmt.Errorf("both heads learned sample %q", e.id)
			}
			return fmt.Errorf("both heads learned the same row (no sample id, content sha256 %x…)", e.hash[:6])
		}
	}
	return nil
}

// Merge appends o's entries (after CheckDisjoint and Relabel).
func (l *Ledger) Merge(o *Ledger) { l.entries = append(l.entries, o.entries...) }

// ledgerTensors are the tensor names a ledger occupies in a head file.
var ledgerTensors = [...]string{"ledger.labels", "ledger.sha256"}

// ledgerIDsKey is the metadata key of the ledger's ids.
const ledgerIDsKey = "ledger_ids"

// isLedgerTensor reports whether a head file's tensor belongs to the ledger
// rather than to the head's state.
func isLedgerTensor(name string) bool { return strings.HasPrefix(name, "ledger.") }

// encode adds the ledger to a head file (nothing for a nil ledger). Its
// labels must be classes h scores.
func (l *Ledger) encode(f *safetensors.File, h Head) error {
	if l == nil {
		return nil
	}
	if err := l.check(h, h.Dim()); err != nil {
		return err
	}
	if err := l.Encode(f); err != nil {
		return fmt.Errorf("the %s head's state: %w", h.Method(), err)
	}
	return nil
}

// Encode adds the ledger to f in the head-file layout (see Ledger): the
// tensors "ledger.labels" I64 [n] and "ledger.sha256" U8 [n, 32] and the
// metadata "ledger_ids". Learner files keep their head's ledger this way
// too. f must not hold those tensors already; a nil ledger adds nothing.
// It does not check the labels against a head: a head file's Save does, a
// learner checks them against the classes it learned.
func (l *Ledger) Encode(f *safetensors.File) error {
	if l == nil {
		return nil
	}
	for _, n := range ledgerTensors {
		if _, clash := f.Tensors[n]; clash {
			return fmt.Errorf("ledger: the file already has a tensor %q, which the ledger needs", n)
		}
	}
	n := len(l.entries)
	labels := make([]int64, n)
	hashes := make([]byte, 0, 32*n)
	ids := make([]string, n)
	for i, e := range l.entries {
		labels[i] = int64(e.label)
		hashes = append(hashes, e.hash[:]...)
		ids[i] = e.id
	}
	js, err := json.Marshal(ids)
	if err != nil {
		return err
	}
	f.Tensors["ledger.labels"] = safetensors.FromInt64s([]int64{int64(n)}, labels)
	f.Tensors["ledger.sha256"] = safetensors.Tensor{DType: safetensors.U8, Shape: []int64{int64(n), 32}, Data: hashes}
	f.Metadata[ledgerIDsKey] = string(js)
	return nil
}

// DecodeLedger reads the ledger Encode wrote into a parsed file: nil when
// the file has none, an error when it is partial or inconsistent. Labels
// are not checked against a head (Load does that for head files).
func DecodeLedger(f *safetensors.File) (*Ledger, error) {
	_, hasLabels := f.Tensors["ledger.labels"]
	_, hasHashes := f.Tensors["ledger.sha256"]
	idsJSON, hasIDs := f.Metadata[ledgerIDsKey]
	if !hasLabels && !hasHashes && !hasIDs {
		return nil, nil
	}
	if !hasLabels || !hasHashes || !hasIDs {
		return nil, fmt.Errorf("ledger: the file has only part of it (tensors ledger.labels %v, ledger.sha256 %v, metadata %s %v)",
			hasLabels, hasHashes, ledgerIDsKey, hasIDs)
	}
	lt, err := f.Get("ledger.labels", safetensors.I64, 1)
	if err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	ht, err := f.Get("ledger.sha256", safetensors.U8, 2)
	if err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	n := lt.Shape[0]
	if ht.Shape[0] != n || ht.Shape[1] != 32 {
		return nil, fmt.Errorf("ledger: ledger.sha256 has shape %v, want [%d 32]", ht.Shape, n)
	}
	var ids []string
	if err := json.Unmarshal([]byte(idsJSON), &ids); err != nil {
		return nil, fmt.Errorf("ledger: metadata %s: %v", ledgerIDsKey, err)
	}
	if int64(len(ids)) != n {
		return nil, fmt.Errorf("ledger: %d ids for %d rows", len(ids), n)
	}
	l := &Ledger{entries: make([]ledgerEntry, n)}
	for i, y := range lt.Int64s() {
		if y < 0 || y > math.MaxInt32 {
			return nil, fmt.Errorf("ledger: row %d has label %d", i, y)
		}
		e := &l.entries[i]
		e.id, e.label = ids[i], int(y)
		copy(e.hash[:], ht.Data[32*i:32*(i+1)])
	}
	return l, nil
}

// check verifies that every ledger label is a class h scores (a ledger
// that disagrees with its head would let wrong rows be unlearned).
func (l *Ledger) check(h Head, dim int) error {
	if l == nil {
		return nil
	}
	scored := map[int]bool{}
	for _, c := range h.Classes() {
		scored[c] = true
	}
	for i, e := range l.entries {
		if !scored[e.label] {
			return fmt.Errorf("ledger: row %d (sample %q) has class label %d, which the %s head does not score", i, e.id, e.label, h.Method())
		}
	}
	if len(l.entries) > 0 && dim == 0 {
		return fmt.Errorf("ledger: %d learned rows but the %s head is empty", len(l.entries), h.Method())
	}
	return nil
}
