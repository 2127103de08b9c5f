package serve

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"sync"
	"unicode/utf8"

	"github.com/cl-dev/cl/features"
	"github.com/cl-dev/cl/heads"
	"github.com/cl-dev/cl/internal/safetensors"
)

// immediateMethods are the heads whose Scores reflect every Learn, Unlearn
// and RemoveClass at once (prototypes rebuilt on change): the server scores
// with the learning head itself. Every other head solves per stage (RanPAC's
// ridge system and λ, LDA's shared covariance, FeCAM's precisions): the
// server scores with a solved copy and re-solves on the debounced schedule
// (see resolver.go).
var immediateMethods = map[string]bool{"simplecil": true, "aper": true, "ncm": true}

// exactRebuildMethods keep per-class sums only, so forgetting samples of a
// class by removing the class and learning its remaining samples again (in
// learning order) gives bit for bit the head a fresh fit of the remaining
// samples gives.
var exactRebuildMethods = map[string]bool{"simplecil": true, "aper": true, "ncm": true}

// model is the server's continual learner: the head, its class names, the
// samples learned through the server, and what predictions are scored with.
//
// Locking: mu guards everything below it. Mutations hold mu for writing
// while they check, apply and journal a change; predictions with an
// immediate head hold it for reading while they score; predictions with a
// solving head only load the serving snapshot.
type model struct {
	mu sync.RWMutex

	method    string
	immediate bool
	head      heads.Head
	info      heads.Info     // Classes: names, index = label (never reordered); Ledger: see ledger.go
	label     map[string]int // class name → label
	base      map[string]bool
	baseIDs   map[string]int // ids in the ledger the server has no samples of (the initial head file's) → label
	st        *store
	maxSamp   int
	readOnly  bool // an inference-only head (cl export): learn and forget are refused

	applied  uint64 // last journal seq applied
	version  uint64 // journal seq the serving head reflects
	learned  bool   // samples learned since the last solve
	unsolved int    // changes since the last solve
	solveErr error

	serving servingHead // solving heads: the solved copy; immediate: unused
	servMu  sync.RWMutex
}

// servingHead is an immutable solved head with its class names.
type servingHead struct {
	h       heads.Head
	names   []string
	version uint64
}

func newModel(h heads.Head, info heads.Info, base []string, maxSamples int) *model {
	m := &model{method: h.Method(), immediate: immediateMethods[h.Method()], head: h, info: info,
		label: map[string]int{}, base: map[string]bool{}, baseIDs: map[string]int{}, st: newStore(), maxSamp: maxSamples,
		readOnly: heads.InferenceOnly(h)}
	for i, c := range info.Classes {
		m.label[c] = i
	}
	for _, c := range base {
		m.base[c] = true
	}
	return m
}

// apiErr is an error the client caused (4xx) with a machine-readable code.
type apiErr struct {
	status int
	code   string
	msg    string
}

func (e *apiErr) Error() string { return e.msg }

func errf(status int, code, format string, args ...any) *apiErr {
	return &apiErr{status, code, fmt.Sprintf(format, args...)}
}

// dim is the feature width the head expects (0 while it has learned nothing).
func (m *model) dim() int {
	if d := m.head.Dim(); d > 0 {
		return d
	}
	return m.info.Dim
}

// checkName validates a client-given id or class name.
func checkName(what, s string) *apiErr {
	if s == "" {
		return errf(400, "bad_"+what, "%s is empty", what)
	}
	if len(s) > 256 {
		return errf(400, "bad_"+what, "%s %.40q… is %d bytes; the limit is 256", what, s, len(s))
	}
	if !utf8.ValidString(s) {
		return errf(400, "bad_"+what, "%s %q is not valid UTF-8", what, s)
	}
	return nil
}

// checkLearn validates samples against the request and the state and
// returns those to learn: a sample whose id is already learned with the
// same class is a retry and is skipped (counted in dups); with another
// class it is a conflict. Nothing changes. Caller holds mu.
func (m *model) checkLearn(ss []newSample, dim int) (fresh []newSample, dups int, err error) {
	if len(ss) == 0 {
		return nil, 0, errf(400, "no_samples", "the request has no samples")
	}
	seen := map[string]bool{}
	for i, s := range ss {
		if e := checkName("id", s.ID); e != nil {
			return nil, 0, e
		}
		if e := checkName("class", s.Class); e != nil {
			return nil, 0, e
		}
		if seen[s.ID] {
			return nil, 0, errf(400, "duplicate_id", "sample %d: id %q appears twice in the request", i, s.ID)
		}
		seen[s.ID] = true
		if len(s.X) != dim {
			return nil, 0, errf(400, "wrong_dimension", "sample %d (%q): %d features, the model has %d", i, s.ID, len(s.X), dim)
		}
		for j, v := range s.X {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, 0, errf(400, "not_finite", "sample %d (%q): feature %d is %v", i, s.ID, j, v)
			}
		}
		if old, ok := m.st.byID[s.ID]; ok {
			if old.class != s.Class {
				return nil, 0, errf(409, "id_conflict", "sample %q was learned as class %q; forget it first to learn it as %q", s.ID, old.class, s.Class)
			}
			dups++
			continue
		}
		if l, ok := m.baseIDs[s.ID]; ok {
			if m.info.Classes[l] != s.Class {
				return nil, 0, errf(409, "id_conflict", "sample %q was learned as class %q (by the initial head file, as its ledger records); it cannot be learned as %q", s.ID, m.info.Classes[l], s.Class)
			}
			dups++
			continue
		}
		fresh = append(fresh, s)
	}
	if m.st.len()+len(fresh) > m.maxSamp {
		return nil, 0, errf(507, "store_full", "the server holds %d samples and the limit is %d (--max-samples); forget some first", m.st.len(), m.maxSamp)
	}
	return fresh, dups, nil
}

// applyLearn learns ss (checked) as journal record seq: one Learn call for
// the whole record, so replay groups rows exactly as the live server did.
func (m *model) applyLearn(seq uint64, ss []newSample) error {
	if len(ss) == 0 {
		m.applied = seq
		return nil
	}
	d := len(ss[0].X)
	x := make([]float32, 0, d*len(ss))
	y := make([]int, len(ss))
	ids := make([]string, len(ss))
	added := []string{}
	for i, s := range ss {
		ids[i] = s.ID
		l, ok := m.label[s.Class]
		if !ok {
			l = len(m.info.Classes)
			m.info.Classes = append(m.info.Classes, s.Class)
			m.label[s.Class] = l
			added = append(added, s.Class)
		}
		y[i] = l
		x = append(x, s.X...)
	}
	if err := m.head.Learn(x, y); err != nil {
		// Undo the new names: nothing else changed.
		m.info.Classes = m.info.Classes[:len(m.info.Classes)-len(added)]
		for _, c := range added {
			delete(m.label, c)
		}
		return errf(400, "learn_refused", "%v", err)
	}
	for _, s := range ss {
		m.st.add(&sample{id: s.ID, class: s.Class, seq: seq, x: s.X})
	}
	m.ledgerAdd(&features.Set{X: x, N: len(ss), D: d, IDs: ids}, y)
	m.info.Dim = d
	m.changed(seq, true)
	return nil
}

// headClasses returns the names of the classes the head scores.
func (m *model) headClasses() map[string]bool {
	out := map[string]bool{}
	for _, l := range m.head.Classes() {
		out[m.info.Classes[l]] = true
	}
	return out
}

// checkForget validates a forget request. Caller holds mu.
func (m *model) checkForget(f forgetRecord) *apiErr {
	if len(f.Classes) == 0 && len(f.IDs) == 0 {
		return errf(400, "nothing_to_forget", "give classes or ids to forget")
	}
	if len(f.Classes) > 0 && len(f.IDs) > 0 {
		return errf(400, "bad_forget", "forget either classes or ids in one request, not both")
	}
	have := m.headClasses()
	seen := map[string]bool{}
	for _, c := range f.Classes {
		if e := checkName("class", c); e != nil {
			return e
		}
		if seen[c] {
			return errf(400, "duplicate_class", "class %q appears twice", c)
		}
		seen[c] = true
		if !have[c] {
			return errf(404, "unknown_class", "the model has no class %q (GET /v1/classes lists them)", c)
		}
	}
	for _, id := range f.IDs {
		if e := checkName("id", id); e != nil {
			return e
		}
		if seen[id] {
			return errf(400, "duplicate_id", "id %q appears twice", id)
		}
		seen[id] = true
		if _, ok := m.st.byID[id]; !ok {
			if l, ok := m.baseIDs[id]; ok {
				return errf(409, "cannot_forget", "sample %q (class %q) came with the initial head file: the server does not hold its features, so it cannot unlearn it; forget its class, or forget it offline with cl forget --features before serving the head", id, m.info.Classes[l])
			}
			return errf(404, "unknown_id", "sample %q was never learned by this server (or was forgotten): nothing was changed", id)
		}
	}
	return nil
}

// rows gathers the features and labels of samples.
func (m *model) rows(ss []*sample) ([]float32, []int) {
	if len(ss) == 0 {
		return nil, nil
	}
	x := make([]float32, 0, len(ss)*len(ss[0].x))
	y := make([]int, len(ss))
	for i, s := range ss {
		x = append(x, s.x...)
		y[i] = m.label[s.class]
	}
	return x, y
}

// applyForget forgets classes or samples (checked) as journal record seq.
// It returns the number of samples and classes removed. A class is removed
// with RemoveClass, or, where the head cannot separate a class's share of
// shared statistics (LDA, RanPAC without class_gram), by Unlearn of the
// class's samples; a class that came with the initial head file and cannot
// be removed that way is refused before anything changes. Samples are
// removed exactly: for per-class heads (SimpleCIL, APER, NCM) by removing
// the class and learning its remaining samples again in learning order,
// otherwise by Unlearn.
func (m *model) applyForget(seq uint64, f forgetRecord) (nSamples, nClasses int, err error) {
	for i, c := range f.Classes {
		l := m.label[c]
		err := m.head.RemoveClass(l)
		if err != nil {
			if m.base[c] {
				if i > 0 {
					return 0, 0, fmt.Errorf("forgetting class %q after %d others: %w", c, i, err)
				}
				return 0, 0, errf(409, "cannot_forget", "class %q came with the head file and this %s head cannot remove it without its samples: %v", c, m.method, err)
			}
			x, y := m.rows(m.st.byClass[c])
			if err := m.head.Unlearn(x, y); err != nil {
				return 0, 0, fmt.Errorf("forgetting class %q: %w", c, err)
			}
		}
		nSamples += len(m.st.removeClass(c))
		m.ledgerRemoveLabel(l)
		delete(m.base, c)
		nClasses++
	}
	if len(f.IDs) > 0 {
		before := len(m.headClasses())
		byClass := map[string][]*sample{}
		drop := map[string]bool{}
		gone := make([]*sample, len(f.IDs))
		for i, id := range f.IDs {
			s := m.st.byID[id]
			byClass[s.class] = append(byClass[s.class], s)
			drop[id] = true
			gone[i] = s
		}
		// The ledger must hold every row (same id, class and values) before
		// anything is unlearned, as cl forget --features requires.
		rest, err := m.ledgerWithout(gone)
		if err != nil {
			return 0, 0, err
		}
		classes := make([]string, 0, len(byClass))
		for c := range byClass {
			classes = append(classes, c)
		}
		sort.Strings(classes)
		for _, c := range classes {
			if err := m.forgetSamples(c, byClass[c], drop); err != nil {
				return 0, 0, err
			}
		}
		m.st.remove(drop)
		if rest != nil {
			m.info.Ledger = rest
		}
		nSamples = len(drop)
		nClasses = before - len(m.headClasses())
	}
	m.changed(seq, false)
	return nSamples, nClasses, nil
}

func (m *model) forgetSamples(c string, gone []*sample, drop map[string]bool) error {
	l := m.label[c]
	if exactRebuildMethods[m.method] && !m.base[c] {
		var keep []*sample
		for _, s := range m.st.byClass[c] {
			if !drop[s.id] {
				keep = append(keep, s)
			}
		}
		if err := m.head.RemoveClass(l); err == nil {
			if len(keep) == 0 {
				return nil
			}
			x, y := m.rows(keep)
			if err := m.head.Learn(x, y); err != nil {
				return fmt.Errorf("forgetting samples of class %q: learning the %d that remain: %w", c, len(keep), err)
			}
			return nil
		}
	}
	x, y := m.rows(gone)
	if err := m.head.Unlearn(x, y); err != nil {
		return errf(409, "cannot_forget", "forgetting %d samples of class %q: %v", len(gone), c, err)
	}
	return nil
}

// changed records a mutation at journal seq.
func (m *model) changed(seq uint64, learned bool) {
	m.applied = seq
	if m.immediate {
		m.version = seq
		return
	}
	m.unsolved++
	m.learned = m.learned || learned
}

// solve ends the stage (after learning) or re-solves (after forgetting
// only) and publishes a solved copy for predictions. Caller holds mu.
func (m *model) solve() error {
	if m.immediate || m.unsolved == 0 {
		return nil
	}
	if len(m.head.Classes()) > 0 {
		var err error
		if m.learned {
			err = m.head.EndStage()
		} else {
			err = heads.Refresh(m.head)
		}
		if err != nil {
			m.solveErr = err
			return err
		}
	}
	if err := m.publish(); err != nil {
		m.solveErr = err
		return err
	}
	m.solveErr = nil
	m.learned, m.unsolved = false, 0
	return nil
}

// publish makes a copy of the (solved) learning head the one predictions
// score with, at the version of the last applied record. Caller holds mu.
func (m *model) publish() error {
	c, err := cloneHead(m.head)
	if err != nil {
		return err
	}
	if len(c.Classes()) > 0 && c.Dim() > 0 {
		// Score one row now so that any lazily computed state is built
		// before concurrent predictions read the copy.
		if _, err := c.Scores(make([]float32, c.Dim())); err != nil {
			return err
		}
	}
	m.version = m.applied
	m.servMu.Lock()
	m.serving = servingHead{h: c, names: append([]string(nil), m.info.Classes...), version: m.version}
	m.servMu.Unlock()
	return nil
}

// cloneHead deep-copies a head through its State and its method's loader.
// An inference-only head (cl export) is never changed, so it is its own copy.
func cloneHead(h heads.Head) (heads.Head, error) {
	if heads.InferenceOnly(h) {
		return h, nil
	}
	t, p, err := h.State()
	if err != nil {
		return nil, err
	}
	spec, ok := heads.Lookup(h.Method())
	if !ok {
		return nil, fmt.Errorf("unknown head method %q", h.Method())
	}
	t2 := make(map[string]safetensors.Tensor, len(t))
	for k, v := range t {
		v.Data = append([]byte(nil), v.Data...)
		t2[k] = v
	}
	p2 := make(map[string]string, len(p))
	for k, v := range p {
		p2[k] = v
	}
	return spec.Load(t2, p2)
}

// errNotReady is returned by score before a solving head was first solved.
var errNotReady = errors.New("the model has no solved head yet")

// score returns, for every row of x [n, D], the classes and scores of the
// k best classes, best first, and the model version that produced them.
func (m *model) score(x []float32, n, k int) ([][]classScore, uint64, error) {
	var h heads.Head
	var names []string
	var version uint64
	if m.immediate {
		m.mu.RLock()
		defer m.mu.RUnlock()
		h, names, version = m.head, m.info.Classes, m.version
	} else {
		m.servMu.RLock()
		s := m.serving
		m.servMu.RUnlock()
		if s.h == nil {
			return nil, 0, errNotReady
		}
		h, names, version = s.h, s.names, s.version
	}
	cls := h.Classes()
	if len(cls) == 0 {
		return nil, version, errf(409, "no_classes", "the model has no classes yet: teach it with POST /v1/learn")
	}
	if d := h.Dim(); d != 0 && d*n != len(x) {
		return nil, version, errf(400, "wrong_dimension", "%d features per row, the model has %d", len(x)/max(n, 1), d)
	}
	sc, err := h.Scores(x)
	if err != nil {
		return nil, version, err
	}
	c := len(cls)
	k = min(k, c)
	out := make([][]classScore, n)
	idx := make([]int, c)
	for i := 0; i < n; i++ {
		row := sc[i*c : (i+1)*c]
		for j := range idx {
			idx[j] = j
		}
		sort.SliceStable(idx, func(a, b int) bool { return row[idx[a]] > row[idx[b]] })
		top := make([]classScore, k)
		for j := 0; j < k; j++ {
			top[j] = classScore{Class: names[cls[idx[j]]], Score: row[idx[j]]}
		}
		out[i] = top
	}
	return out, version, nil
}

// classScore is one entry of a prediction.
type classScore struct {
	Class string  `json:"class"`
	Score float64 `json:"score"`
}
