package serve

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/cl-dev/cl/features"
	"github.com/cl-dev/cl/heads"
	"github.com/cl-dev/cl/internal/atomicfile"
	"github.com/cl-dev/cl/internal/journal"
)

// The state folder (--state DIR):
//
//	LOCK                         held (flock) by the one server using the folder
//	state.json                   which snapshot is current (written atomically, last)
//	head-<seq>.safetensors       the head after journal record <seq> (a cl head file)
//	samples-<seq>.safetensors    the samples learned through the server and not forgotten,
//	                             in learning order (a cl feature file: `cl fit` reads it)
//	journal/journal-<seq>.log    every learn and forget after the snapshot (internal/journal)
//
// A snapshot is taken every Config.SnapshotEvery records (and at shutdown):
// the journal is rotated, the head and samples are copied under the lock and
// written atomically, state.json is replaced, then the journal segments the
// snapshot covers and the older snapshot files are deleted. At start the
// server loads the snapshot state.json names and replays the journal after it.

// StateFormat is the "format" of state.json.
const StateFormat = "cl.serve-state/1"

type stateFile struct {
	Format string `json:"format"`
	// Seq is the last journal record the snapshot includes.
	Seq     uint64 `json:"seq"`
	Head    string `json:"head"`
	Samples string `json:"samples,omitempty"`
	// BaseClasses are the classes that came with the initial head file
	// (their samples are not in the samples file).
	BaseClasses []string `json:"base_classes"`
	// Unsolved and Learned carry the re-solve schedule's state.
	Unsolved int  `json:"unsolved,omitempty"`
	Learned  bool `json:"learned,omitempty"`
}

// Recovered says what opening the state folder found.
type Recovered struct {
	// Created is true when the folder held no state and the initial head
	// was used.
	Created bool
	// SnapshotSeq is the journal record the loaded snapshot ends at;
	// Replayed the number of journal records applied after it.
	SnapshotSeq uint64
	Replayed    int
	// Journal is what internal/journal reported (a dropped tail).
	Journal journal.Recovery
}

// state is the durable side of the server: the state folder, its lock and
// the journal.
type state struct {
	dir  string
	lock *os.File
	j    *journal.Journal
	log  *slog.Logger
}

func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("--state %s: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("--state %s is in use by another cl serve (its LOCK file is held): stop that server or choose another folder", dir)
	}
	return f, nil
}

// openState opens (or creates) the state folder and rebuilds the model:
// snapshot, then journal replay. initial supplies the head and its info
// when the folder is new.
func openState(dir string, initial func() (heads.Head, heads.Info, error), maxSamples int, log *slog.Logger) (*state, *model, Recovered, error) {
	var rec Recovered
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, rec, fmt.Errorf("--state: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, nil, rec, err
	}
	s := &state{dir: dir, lock: lock, log: log}
	fail := func(err error) (*state, *model, Recovered, error) {
		lock.Close()
		return nil, nil, rec, err
	}
	var m *model
	var sf stateFile
	data, err := os.ReadFile(filepath.Join(dir, "state.json"))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		h, info, err := initial()
		if err != nil {
			return fail(err)
		}
		var base []string
		for _, l := range h.Classes() {
			base = append(base, info.Classes[l])
		}
		m = newModel(h, info, base, maxSamples)
		rec.Created = true
	case err != nil:
		return fail(fmt.Errorf("--state: %w", err))
	default:
		if err := json.Unmarshal(data, &sf); err != nil || sf.Format != StateFormat {
			return fail(fmt.Errorf("--state %s: state.json is not a cl serve state (%v): is this the right folder?", dir, err))
		}
		if m, err = loadSnapshot(dir, sf, maxSamples); err != nil {
			return fail(err)
		}
		rec.SnapshotSeq = sf.Seq
	}
	if err := m.initLedger(log); err != nil {
		return fail(fmt.Errorf("--state %s: %w", dir, err))
	}
	j, jrec, err := journal.Open(filepath.Join(dir, "journal"), sf.Seq, func(seq uint64, p []byte) error {
		if seq <= sf.Seq {
			return nil
		}
		rec.Replayed++
		return m.replay(seq, p)
	})
	rec.Journal = jrec
	if err != nil {
		return fail(fmt.Errorf("--state %s: %w", dir, err))
	}
	s.j = j
	if jrec.Dropped > 0 {
		log.Warn("journal: dropped a damaged tail (never acknowledged: a crash during its write)",
			"file", jrec.DroppedFile, "bytes", jrec.Dropped, "reason", jrec.DropReason)
	}
	if rec.Created {
		if err := s.snapshot(m); err != nil {
			j.Close()
			return fail(err)
		}
	}
	if !m.immediate {
		if m.unsolved > 0 {
			if err := m.solve(); err != nil {
				log.Warn("re-solve after start failed; predictions wait for the next learn", "err", err)
			}
		} else if err := m.publish(); err != nil {
			j.Close()
			return fail(err)
		}
	}
	return s, m, rec, nil
}

// replay applies one journal record at start.
func (m *model) replay(seq uint64, p []byte) error {
	kind, learn, forget, err := decodeRecord(p)
	if err != nil {
		return err
	}
	switch kind {
	case kindLearn:
		return m.applyLearn(seq, learn)
	default:
		_, _, err := m.applyForget(seq, forget)
		return err
	}
}

func loadSnapshot(dir string, sf stateFile, maxSamples int) (*model, error) {
	for _, n := range []string{sf.Head, sf.Samples} {
		if strings.ContainsAny(n, `/\`) {
			return nil, fmt.Errorf("--state %s: state.json names %q, not a file in the folder", dir, n)
		}
	}
	h, info, err := heads.Load(filepath.Join(dir, sf.Head))
	if err != nil {
		return nil, fmt.Errorf("--state: snapshot %w", err)
	}
	m := newModel(h, info, sf.BaseClasses, maxSamples)
	m.unsolved, m.learned = sf.Unsolved, sf.Learned
	m.applied, m.version = sf.Seq, sf.Seq
	if sf.Samples != "" {
		set, err := features.Read(filepath.Join(dir, sf.Samples))
		if err != nil {
			return nil, fmt.Errorf("--state: snapshot %w", err)
		}
		for i := 0; i < set.N; i++ {
			m.st.add(&sample{id: set.IDs[i], class: set.Classes[set.Labels[i]], seq: sf.Seq, x: set.Row(i)})
		}
	}
	return m, nil
}

// snapshot writes the model's state as of the last journal record and trims
// the journal. It holds m.mu only while copying.
func (s *state) snapshot(m *model) error {
	m.mu.Lock()
	seq, err := s.j.Rotate()
	if err != nil {
		m.mu.Unlock()
		return err
	}
	h, err := cloneHead(m.head)
	if err != nil {
		m.mu.Unlock()
		return fmt.Errorf("snapshot: %w", err)
	}
	info := m.info
	info.Classes = append([]string(nil), m.info.Classes...)
	// The head file carries the ledger as cl fit writes it (ledger.go).
	info.Ledger = m.ledgerCopy()
	samples := m.st.ordered()
	sf := stateFile{Format: StateFormat, Seq: seq, Head: fmt.Sprintf("head-%020d.safetensors", seq),
		Unsolved: m.unsolved, Learned: m.learned, BaseClasses: []string{}}
	for c := range m.base {
		sf.BaseClasses = append(sf.BaseClasses, c)
	}
	m.mu.Unlock()

	if err := heads.Save(filepath.Join(s.dir, sf.Head), h, info); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	if len(samples) > 0 {
		sf.Samples = fmt.Sprintf("samples-%020d.safetensors", seq)
		if err := writeSamples(filepath.Join(s.dir, sf.Samples), info, samples); err != nil {
			return fmt.Errorf("snapshot: %w", err)
		}
	}
	err = atomicfile.WriteFile(filepath.Join(s.dir, "state.json"), func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(sf)
	})
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	if err := s.j.Trim(seq); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	s.removeOld(sf)
	return nil
}

// writeSamples writes samples (learning order) as a feature file whose
// labels are the head's (info.Classes).
func writeSamples(path string, info heads.Info, samples []*sample) error {
	ids := make([]string, len(samples))
	for i, s := range samples {
		ids[i] = s.id
	}
	label := map[string]int{}
	for i, c := range info.Classes {
		label[c] = i
	}
	w, err := features.Create(path, features.Header{D: len(samples[0].x), Classes: info.Classes, Model: info.Model,
		ModelSHA256: info.ModelSHA256, Fingerprint: info.Fingerprint, Preprocess: info.Preprocess, Source: "cl serve"}, ids)
	if err != nil {
		return err
	}
	defer w.Abort()
	for _, s := range samples {
		if err := w.Append(s.x, label[s.class], s.id); err != nil {
			return err
		}
	}
	return w.Commit()
}

// removeOld deletes snapshot files other than the current ones.
func (s *state) removeOld(cur stateFile) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		n := e.Name()
		if (strings.HasPrefix(n, "head-") || strings.HasPrefix(n, "samples-")) && strings.HasSuffix(n, ".safetensors") &&
			n != cur.Head && n != cur.Samples {
			os.Remove(filepath.Join(s.dir, n))
		}
	}
}

func (s *state) close() error {
	err := s.j.Close()
	s.lock.Close()
	return err
}
