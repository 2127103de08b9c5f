package serve

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/cl-dev/cl/heads"
)

// world is a test client's view: the samples it had acknowledged, in the
// order the server learned them (reply seq, then position).
type world struct {
	rng   *rand.Rand
	dim   int
	live  map[string]learnSample
	order map[string][2]uint64 // id → (seq, position)
	n     int
}

func newWorld(seed uint64, dim int) *world {
	return &world{rng: rand.New(rand.NewPCG(seed, 7)), dim: dim, live: map[string]learnSample{}, order: map[string][2]uint64{}}
}

// sample makes a feature row near the centre of class c.
func (w *world) sample(c int) learnSample {
	w.n++
	x := make([]float32, w.dim)
	for j := range x {
		x[j] = float32(w.rng.NormFloat64()*0.5 + float64((c*7+j)%5))
	}
	return learnSample{ID: fmt.Sprintf("id%d", w.n), Class: fmt.Sprintf("class%d", c), Features: x}
}

func (w *world) acked(seq uint64, ss []learnSample) {
	for i, s := range ss {
		w.live[s.ID] = s
		w.order[s.ID] = [2]uint64{seq, uint64(i)}
	}
}

// ordered returns the live samples in learning order.
func (w *world) ordered() []learnSample {
	out := make([]learnSample, 0, len(w.live))
	for _, s := range w.live {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := w.order[out[i].ID], w.order[out[j].ID]
		return a[0] < b[0] || a[0] == b[0] && a[1] < b[1]
	})
	return out
}

// newHeadOpts are the options of the offline head (checkSameTol).
var newHeadOpts [][2]string

// offline fits a fresh head of method on the live samples in learning
// order, as `cl fit` does (one Learn, one EndStage), and returns it with
// its class names.
func (w *world) offline(t testing.TB, method string) (heads.Head, []string) {
	t.Helper()
	h, _, err := newHead(t, method, newHeadOpts...)()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	label := map[string]int{}
	var x []float32
	var y []int
	for _, s := range w.ordered() {
		l, ok := label[s.Class]
		if !ok {
			l = len(names)
			names = append(names, s.Class)
			label[s.Class] = l
		}
		x = append(x, s.Features...)
		y = append(y, l)
	}
	if len(y) > 0 {
		if err := h.Learn(x, y); err != nil {
			t.Fatal(err)
		}
		if err := h.EndStage(); err != nil {
			t.Fatal(err)
		}
	}
	return h, names
}

// checkSame asserts that the server's scores for probes equal the offline
// head's bit for bit (tol 0) or within tol relative to max(1, |score|),
// class by class.
func checkSame(t testing.TB, ts *testServer, w *world, method string, probes [][]float32, tol float64) {
	t.Helper()
	h, names := w.offline(t, method)
	if len(h.Classes()) == 0 {
		r := ts.postJSON("/v1/predict", predictRequest{Features: probes})
		if r.code != 409 {
			t.Fatalf("no classes: predict gave %d, want 409: %s", r.code, r.body)
		}
		return
	}
	var pr predictReply
	must(t, ts.postJSON("/v1/predict", predictRequest{Features: probes, Top: len(h.Classes())}), 200).json(t, &pr)
	var flat []float32
	for _, p := range probes {
		flat = append(flat, p...)
	}
	sc, err := h.Scores(flat)
	if err != nil {
		t.Fatal(err)
	}
	cls := h.Classes()
	for i, p := range pr.Predictions {
		if len(p.Top) != len(cls) {
			t.Fatalf("probe %d: server scores %d classes, offline %d", i, len(p.Top), len(cls))
		}
		for _, cs := range p.Top {
			k := -1
			for j, l := range cls {
				if names[l] == cs.Class {
					k = j
				}
			}
			if k < 0 {
				t.Fatalf("probe %d: server has class %q, the offline fit does not", i, cs.Class)
			}
			want := sc[i*len(cls)+k]
			if d := math.Abs(cs.Score - want); d > tol*max(1, math.Abs(want)) {
				t.Fatalf("probe %d class %s: server %.17g, offline fit %.17g", i, cs.Class, cs.Score, want)
			}
		}
	}
}

func probes(w *world, n int) [][]float32 {
	out := make([][]float32, n)
	for i := range out {
		out[i] = w.sample(i % 4).Features
	}
	return out
}

// TestLearnForgetExact drives learns, retries, conflicts and forgets by id
// and by class through the JSON API and checks, after every step and
// after a crash and restart (journal replay) and a clean restart
// (snapshot), that the SimpleCIL and NCM servers score exactly (bit for
// bit) as a head fitted offline on the acknowledged samples.
func TestLearnForgetExact(t *testing.T) {
	for _, method := range []string{"simplecil", "ncm"} {
		t.Run(method, func(t *testing.T) {
			ts := startServer(t, t.TempDir(), Config{SnapshotEvery: 1 << 30}, newHead(t, method))
			w := newWorld(1, 32)
			pr := probes(w, 6)
			learn := func(ss ...learnSample) learnReply {
				var lr learnReply
				must(t, ts.postJSON("/v1/learn", learnRequest{Samples: ss}), 200).json(t, &lr)
				w.acked(lr.Seq, ss)
				return lr
			}
			var batch []learnSample
			for i := 0; i < 12; i++ {
				batch = append(batch, w.sample(i%3))
			}
			learn(batch[:5]...)
			learn(batch[5:]...)
			checkSame(t, ts, w, method, pr, 0)

			// A retried id with the same class is not counted twice.
			extra := w.sample(3)
			var lr learnReply
			must(t, ts.postJSON("/v1/learn", learnRequest{Samples: []learnSample{batch[0], extra}}), 200).json(t, &lr)
			if lr.Learned != 1 || lr.Duplicates != 1 {
				t.Fatalf("retry: %+v, want 1 learned and 1 duplicate", lr)
			}
			w.acked(lr.Seq, []learnSample{extra})
			checkSame(t, ts, w, method, pr, 0)

			// The same id with another class is a conflict; nothing changes.
			c := batch[1]
			c.Class = "class9"
			if r := ts.postJSON("/v1/learn", learnRequest{Samples: []learnSample{w.sample(1), c}}); r.code != 409 || r.errCode() != "id_conflict" {
				t.Fatalf("conflict: %d %s", r.code, r.body)
			}
			checkSame(t, ts, w, method, pr, 0)

			// Forget samples by id (exact rebuild of their classes).
			must(t, ts.postJSON("/v1/forget", forgetRecord{IDs: []string{batch[2].ID, batch[4].ID}}), 200)
			delete(w.live, batch[2].ID)
			delete(w.live, batch[4].ID)
			checkSame(t, ts, w, method, pr, 0)
			// An id never learned (or already forgotten) is refused, whole.
			r := ts.postJSON("/v1/forget", forgetRecord{IDs: []string{batch[3].ID, batch[2].ID}})
			if r.code != 404 || r.errCode() != "unknown_id" {
				t.Fatalf("forgotten id: %d %s", r.code, r.body)
			}
			checkSame(t, ts, w, method, pr, 0)

			// Crash: the journal alone brings everything back.
			ts.crash()
			ts.restart()
			if rec := ts.s.Recovered(); rec.Replayed != 4 || rec.Created {
				t.Fatalf("after crash: %+v, want 4 records replayed", rec)
			}
			checkSame(t, ts, w, method, pr, 0)

			// Forget a class; clean restart (snapshot, empty journal).
			must(t, ts.postJSON("/v1/forget", forgetRecord{Classes: []string{"class0"}}), 200)
			for id, s := range w.live {
				if s.Class == "class0" {
					delete(w.live, id)
				}
			}
			if r := ts.postJSON("/v1/forget", forgetRecord{Classes: []string{"class0"}}); r.code != 404 || r.errCode() != "unknown_class" {
				t.Fatalf("forgotten class: %d %s", r.code, r.body)
			}
			learn(w.sample(0), w.sample(2))
			checkSame(t, ts, w, method, pr, 0)
			ts.close()
			ts.restart()
			if rec := ts.s.Recovered(); rec.Replayed != 0 || rec.SnapshotSeq != 6 {
				t.Fatalf("after clean stop: %+v, want the snapshot at 6 and nothing to replay", rec)
			}
			checkSame(t, ts, w, method, pr, 0)

			// The snapshot's samples file holds exactly the live samples.
			var sl struct {
				Total   int          `json:"total"`
				Samples []sampleInfo `json:"samples"`
			}
			must(t, ts.get("/v1/samples?limit=10000"), 200).json(t, &sl)
			if sl.Total != len(w.live) {
				t.Fatalf("/v1/samples lists %d, the client has %d", sl.Total, len(w.live))
			}
			for _, s := range sl.Samples {
				if w.live[s.ID].Class != s.Class {
					t.Fatalf("sample %s: class %q, want %q", s.ID, s.Class, w.live[s.ID].Class)
				}
			}
		})
	}
}

// TestTornJournalTail appends a half-written record to the journal: the
// restart reports and drops it, and the state is what was acknowledged.
func TestTornJournalTail(t *testing.T) {
	dir := t.TempDir()
	ts := startServer(t, dir, Config{SnapshotEvery: 1 << 30}, newHead(t, "simplecil"))
	w := newWorld(2, 32)
	pr := probes(w, 3)
	for i := 0; i < 3; i++ {
		ss := []learnSample{w.sample(i), w.sample(i + 1)}
		var lr learnReply
		must(t, ts.postJSON("/v1/learn", learnRequest{Samples: ss}), 200).json(t, &lr)
		w.acked(lr.Seq, ss)
	}
	ts.crash()
	segs, _ := filepath.Glob(filepath.Join(dir, "journal", "journal-*.log"))
	if len(segs) != 1 {
		t.Fatalf("segments %v", segs)
	}
	b, _ := os.ReadFile(segs[0])
	// A copy of the last record's first 40 bytes: a torn write of record 4.
	torn := append(b, b[len(b)-300:len(b)-260]...)
	os.WriteFile(segs[0], torn, 0o644)
	ts.restart()
	rec := ts.s.Recovered()
	if rec.Journal.Dropped != 40 || rec.Replayed != 3 {
		t.Fatalf("recovery %+v: want 3 records replayed and 40 bytes dropped", rec)
	}
	checkSame(t, ts, w, "simplecil", pr, 0)
	// Learning continues after the cut.
	ss := []learnSample{w.sample(5)}
	var lr learnReply
	must(t, ts.postJSON("/v1/learn", learnRequest{Samples: ss}), 200).json(t, &lr)
	if lr.Seq != 4 {
		t.Fatalf("next record %d, want 4", lr.Seq)
	}
	w.acked(lr.Seq, ss)
	checkSame(t, ts, w, "simplecil", pr, 0)
}

// TestForgetLastSamplesOfClass: forgetting every sample of a class by id
// removes the class and says so.
func TestForgetLastSamplesOfClass(t *testing.T) {
	ts := startServer(t, t.TempDir(), Config{}, newHead(t, "simplecil"))
	w := newWorld(9, 32)
	a, b, c := w.sample(0), w.sample(0), w.sample(1)
	must(t, ts.postJSON("/v1/learn", learnRequest{Samples: []learnSample{a, b, c}}), 200)
	var fr forgetReply
	must(t, ts.postJSON("/v1/forget", forgetRecord{IDs: []string{a.ID}}), 200).json(t, &fr)
	if fr.Samples != 1 || fr.Classes != 0 {
		t.Fatalf("forget one of two: %+v", fr)
	}
	must(t, ts.postJSON("/v1/forget", forgetRecord{IDs: []string{b.ID, c.ID}}), 200).json(t, &fr)
	if fr.Samples != 2 || fr.Classes != 2 {
		t.Fatalf("forget the last samples of two classes: %+v", fr)
	}
	var cl struct{ Classes []classInfo }
	must(t, ts.get("/v1/classes"), 200).json(t, &cl)
	if len(cl.Classes) != 0 {
		t.Fatalf("classes left: %+v", cl.Classes)
	}
	if r := ts.postJSON("/v1/predict", predictRequest{Features: [][]float32{a.Features}}); r.code != 409 || r.errCode() != "no_classes" {
		t.Fatalf("predict with no classes: %d %s", r.code, r.body)
	}
}
