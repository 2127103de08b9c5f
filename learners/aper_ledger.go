package learners

import (
	"encoding/json"
	"fmt"
	"math"

	"github.com/cl-dev/cl/heads"
	"github.com/cl-dev/cl/internal/safetensors"
)

// rowLedger records the rows an adapted learner's head learned, as a head
// file's ledger does (heads.Ledger): per row the sample id ("" for none),
// the global label and the SHA-256 of the feature row the head learned
// (heads.RowHash of its float32 values). It refuses a sample learned twice
// (its id, or without one its label and content), which would count it
// twice in the prototypes or RanPAC's statistics. Stored in the learner
// file in the head-file layout (aper_file.go).
type rowLedger struct {
	ids    []string
	labels []int
	hashes [][32]byte
}

// newLedgerRows returns the entries of x [n,d] learned as labels y [n];
// ids may be nil.
func newLedgerRows(x []float32, d int, ids []string, y []int) rowLedger {
	r := rowLedger{ids: make([]string, len(y)), labels: append([]int(nil), y...), hashes: make([][32]byte, len(y))}
	for i := range y {
		if ids != nil {
			r.ids[i] = ids[i]
		}
		r.hashes[i] = heads.RowHash(x[i*d : (i+1)*d])
	}
	return r
}

// ledgerKey identifies a sample: its id, or without one its label and hash.
type ledgerKey struct {
	id    string
	label int
	hash  [32]byte
}

func (l *rowLedger) key(i int) ledgerKey {
	if l.ids[i] != "" {
		return ledgerKey{id: l.ids[i]}
	}
	return ledgerKey{label: l.labels[i], hash: l.hashes[i]}
}

func (l *rowLedger) describe(i int) string {
	if l.ids[i] != "" {
		return fmt.Sprintf("image %q", l.ids[i])
	}
	return fmt.Sprintf("row %d (no sample id)", i)
}

// checkNew refuses rows whose sample l holds or that repeat among r.
func (l *rowLedger) checkNew(r rowLedger) error {
	have := make(map[ledgerKey]bool, len(l.labels))
	for i := range l.labels {
		have[l.key(i)] = true
	}
	first := make(map[ledgerKey]int, len(r.labels))
	for i := range r.labels {
		k := r.key(i)
		if have[k] {
			return fmt.Errorf("%s was learned in an earlier stage: the head would count it twice", r.describe(i))
		}
		if j, dup := first[k]; dup {
			return fmt.Errorf("%s repeats row %d: the sample would be learned twice", r.describe(i), j)
		}
		first[k] = i
	}
	return nil
}

// add records r as learned.
func (l *rowLedger) add(r rowLedger) {
	l.ids = append(l.ids, r.ids...)
	l.labels = append(l.labels, r.labels...)
	l.hashes = append(l.hashes, r.hashes...)
}

// encode adds the ledger to f: tensors "ledger.labels" I64 [n] and
// "ledger.sha256" U8 [n,32], metadata "ledger_ids" (JSON array of n ids).
func (l *rowLedger) encode(f *safetensors.File) {
	n := len(l.labels)
	labels := make([]int64, n)
	hashes := make([]byte, 0, 32*n)
	for i, y := range l.labels {
		labels[i] = int64(y)
		hashes = append(hashes, l.hashes[i][:]...)
	}
	ids := l.ids
	if ids == nil {
		ids = []string{}
	}
	js, _ := json.Marshal(ids)
	f.Tensors["ledger.labels"] = safetensors.FromInt64s([]int64{int64(n)}, labels)
	f.Tensors["ledger.sha256"] = safetensors.Tensor{DType: safetensors.U8, Shape: []int64{int64(n), 32}, Data: hashes}
	f.Metadata["ledger_ids"] = string(js)
}

// decodeRowLedger reads what encode wrote; a missing or inconsistent part
// is an error.
func decodeRowLedger(f *safetensors.File) (rowLedger, error) {
	var l rowLedger
	lt, err := f.Get("ledger.labels", safetensors.I64, 1)
	if err != nil {
		return l, fmt.Errorf("ledger: %w", err)
	}
	ht, err := f.Get("ledger.sha256", safetensors.U8, 2)
	if err != nil {
		return l, fmt.Errorf("ledger: %w", err)
	}
	n := lt.Shape[0]
	if ht.Shape[0] != n || ht.Shape[1] != 32 {
		return l, fmt.Errorf("ledger: ledger.sha256 has shape %v, want [%d 32]", ht.Shape, n)
	}
	if err := json.Unmarshal([]byte(f.Metadata["ledger_ids"]), &l.ids); err != nil {
		return l, fmt.Errorf("ledger: metadata ledger_ids: %v", err)
	}
	if int64(len(l.ids)) != n {
		return l, fmt.Errorf("ledger: %d ids for %d rows", len(l.ids), n)
	}
	l.labels, l.hashes = make([]int, n), make([][32]byte, n)
	for i, y := range lt.Int64s() {
		if y < 0 || y > math.MaxInt32 {
			return l, fmt.Errorf("ledger: row %d has label %d", i, y)
		}
		l.labels[i] = int(y)
		copy(l.hashes[i][:], ht.Data[32*i:32*(i+1)])
	}
	return l, nil
}
