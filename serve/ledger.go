package serve

import (
	"log/slog"

	"github.com/cl-dev/cl/features"
	"github.com/cl-dev/cl/heads"
)

// The server keeps the head's ledger (heads.Ledger, in model.info.Ledger) as
// `cl fit`, `cl forget` and `cl merge` do, so that every head file it writes
// records the id, label and content hash of every row the head learned:
// offline commands then treat a server-written head exactly as a
// fit-written one (cl fit refuses repeats, cl forget --features checks the
// rows, cl merge refuses shared samples).
//
// An entry's hash is heads.RowHash of the feature row the head learned: the
// SHA-256 of its D float32 values as little-endian bytes. For samples
// learned as JSON features those are the values sent (each JSON number
// rounded to float32); for samples learned as images, the features the
// server's backbone computed from the decoded, preprocessed image (not the
// image's bytes). Either way they are the rows the snapshot's samples file
// holds, so `cl forget --features samples-<seq>.safetensors` (or a subset of
// its rows) matches them.
//
// The ledger holds, in learning order, the entries that came with the
// initial head file (learned offline; the server has not their features,
// see model.baseIDs) and then every sample learned through the server and
// not forgotten. A head without a ledger (from an older cl) keeps none,
// unless all its classes came through the server (see initLedger).

// initLedger prepares the ledger once the head and the samples are loaded:
// an empty head without one gets an empty ledger (as cl fit creates one); a
// head without one whose every class was learned through the server (no
// base classes: a state folder written before snapshots carried ledgers) gets
// one rebuilt from the samples in learning order. The ledger's ids the
// server holds no samples of are indexed in baseIDs. A ledger that lacks a
// sample the server holds disagrees with the head and is dropped (logged):
// head files written then carry none, as cl fit keeps none for such a head.
func (m *model) initLedger(log *slog.Logger) error {
	if m.readOnly {
		m.info.Ledger = nil
		return nil
	}
	if m.info.Ledger == nil {
		switch {
		case len(m.head.Classes()) == 0:
			m.info.Ledger = heads.NewLedger()
		case len(m.base) == 0:
			l := heads.NewLedger()
			if ss := m.st.ordered(); len(ss) > 0 {
				rows, err := ledgerRows(ss, m.label)
				if err != nil {
					return err
				}
				l.Add(rows)
			}
			m.info.Ledger = l
		default:
			log.Warn("the initial head keeps no ledger of its learned rows (written by an older cl): head files the server writes keep none either, and repeated samples cannot be detected offline")
			return nil
		}
	}
	l := m.info.Ledger
	held := 0
	for i := 0; i < l.Len(); i++ {
		id, label, _ := l.Entry(i)
		if id == "" {
			continue
		}
		if _, ok := m.st.byID[id]; ok {
			held++
			continue
		}
		m.baseIDs[id] = label
	}
	if held != m.st.len() {
		log.Warn("the head's ledger does not list every sample the server holds: it is dropped (head files the server writes keep no ledger)",
			"ledger_rows", l.Len(), "samples", m.st.len(), "samples_in_ledger", held)
		m.info.Ledger = nil
		clear(m.baseIDs)
	}
	return nil
}

// ledgerRows returns the ledger entries of samples.
func ledgerRows(ss []*sample, label map[string]int) (heads.LedgerRows, error) {
	d := len(ss[0].x)
	set := &features.Set{X: make([]float32, 0, len(ss)*d), N: len(ss), D: d, IDs: make([]string, len(ss))}
	y := make([]int, len(ss))
	for i, s := range ss {
		set.X = append(set.X, s.x...)
		set.IDs[i] = s.id
		y[i] = label[s.class]
	}
	return heads.NewLedgerRows(set, y)
}

// ledgerAdd records rows of set (learned as head labels y). Caller holds mu.
func (m *model) ledgerAdd(set *features.Set, y []int) {
	if m.info.Ledger == nil {
		return
	}
	rows, err := heads.NewLedgerRows(set, y)
	if err != nil {
		// Only a length mismatch, which applyLearn cannot produce.
		panic(err)
	}
	m.info.Ledger.Add(rows)
}

// ledgerRemoveLabel drops a forgotten class's entries, and its base ids.
func (m *model) ledgerRemoveLabel(label int) {
	for id, l := range m.baseIDs {
		if l == label {
			delete(m.baseIDs, id)
		}
	}
	if m.info.Ledger != nil {
		m.info.Ledger.RemoveLabel(label)
	}
}

// ledgerWithout returns the ledger without samples (to be forgotten), nil
// when the model keeps none, or an error naming the first sample the
// ledger does not hold as learned (the ledger and the head disagree:
// nothing may be unlearned).
func (m *model) ledgerWithout(ss []*sample) (*heads.Ledger, error) {
	if m.info.Ledger == nil {
		return nil, nil
	}
	rows, err := ledgerRows(ss, m.label)
	if err != nil {
		return nil, err
	}
	rest, err := m.info.Ledger.Without(rows, m.info.Classes)
	if err != nil {
		// Checked before anything changes: refuse, keep serving.
		return nil, errf(500, "ledger", "the head's ledger disagrees with the server's samples (nothing was changed): %v", err)
	}
	return rest, nil
}

// ledgerCopy returns a copy of the ledger for a snapshot (nil when none).
// Caller holds mu.
func (m *model) ledgerCopy() *heads.Ledger {
	if m.info.Ledger == nil {
		return nil
	}
	c := heads.NewLedger()
	c.Merge(m.info.Ledger)
	return c
}
