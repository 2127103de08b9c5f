package serve

import (
	"strings"
	"testing"
	"time"
)

// waitVersion polls /v1/model until the served model version reaches seq
// (the debounced re-solve has run). The deadline only guards against a
// hang; nothing is asserted about how fast it is.
func waitVersion(t *testing.T, ts *testServer, seq uint64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var m modelReply
		must(t, ts.get("/v1/model"), 200).json(t, &m)
		if m.ModelVersion >= seq {
			if m.PendingChanges != 0 {
				t.Fatalf("version %d reached with %d changes pending", m.ModelVersion, m.PendingChanges)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("model version stuck at %d, waiting for %d (solve error %q)", m.ModelVersion, seq, m.SolveError)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSolvingHeads: LDA and RanPAC (fixed λ) re-solve on the debounced
// schedule. A learn is acknowledged as not yet visible; predictions keep
// the previous version until the re-solve, then score as a head fitted
// offline on the acknowledged samples (to rounding: the server's
// statistics were accumulated request by request; 1e-9 relative for
// RanPAC, 1e-6 for LDA). Forgetting a class
// (LDA: by Unlearn of its samples, since its covariance is shared), a
// crash and a restart keep that equality.
func TestSolvingHeads(t *testing.T) {
	for _, tc := range []struct {
		method string
		opts   [][2]string
		tol    float64
	}{
		// LDA inverts the shrunk shared covariance (shrinkage 1e-4), which
		// amplifies the rounding of sums accumulated request by request
		// (measured up to 8e-9 relative).
		{"lda", nil, 1e-6},
		{"ranpac", [][2]string{{"M", "64"}, {"lambda", "0.5"}}, 1e-9},
	} {
		t.Run(tc.method, func(t *testing.T) {
			ts := startServer(t, t.TempDir(), Config{ResolveDelay: 20 * time.Millisecond, ResolveMaxDelay: 100 * time.Millisecond, SnapshotEvery: 1 << 30},
				newHead(t, tc.method, tc.opts...))
			w := newWorld(5, 32)
			pr := probes(w, 5)
			var last learnReply
			for r := 0; r < 4; r++ {
				var ss []learnSample
				for i := 0; i < 10; i++ {
					ss = append(ss, w.sample((r+i)%4))
				}
				must(t, ts.postJSON("/v1/learn", learnRequest{Samples: ss}), 200).json(t, &last)
				w.acked(last.Seq, ss)
				if last.Visible {
					t.Fatalf("a %s learn reported visible before the re-solve: %+v", tc.method, last)
				}
			}
			waitVersion(t, ts, last.Seq)
			offline := func() { t.Helper(); checkSameTol(t, ts, w, tc.method, tc.opts, pr, tc.tol) }
			offline()

			var fr forgetReply
			must(t, ts.postJSON("/v1/forget", forgetRecord{Classes: []string{"class1"}}), 200).json(t, &fr)
			for id, s := range w.live {
				if s.Class == "class1" {
					delete(w.live, id)
				}
			}
			waitVersion(t, ts, fr.Seq)
			offline()
			ids := []string{}
			for id, s := range w.live {
				if s.Class == "class2" && len(ids) < 3 {
					ids = append(ids, id)
				}
			}
			must(t, ts.postJSON("/v1/forget", forgetRecord{IDs: ids}), 200).json(t, &fr)
			for _, id := range ids {
				delete(w.live, id)
			}
			ts.crash()
			ts.restart()
			if v, ok := ts.s.version(); !ok || v != fr.Seq {
				t.Fatalf("after restart: version %d (solved %v), want %d", v, ok, fr.Seq)
			}
			offline()
		})
	}
}

// checkSameTol is checkSame for a head with options.
func checkSameTol(t *testing.T, ts *testServer, w *world, method string, opts [][2]string, pr [][]float32, tol float64) {
	t.Helper()
	saved := newHeadOpts
	newHeadOpts = opts
	defer func() { newHeadOpts = saved }()
	checkSame(t, ts, w, method, pr, tol)
}

// TestRanPACStageNeedsTwo: RanPAC choosing λ per stage cannot solve a stage
// of one sample; the server keeps the previous version and says why.
func TestRanPACStageNeedsTwo(t *testing.T) {
	ts := startServer(t, t.TempDir(), Config{ResolveDelay: 5 * time.Millisecond, ResolveMaxDelay: 10 * time.Millisecond},
		newHead(t, "ranpac", [2]string{"M", "32"}))
	w := newWorld(6, 32)
	must(t, ts.postJSON("/v1/learn", learnRequest{Samples: []learnSample{w.sample(0)}}), 200)
	deadline := time.Now().Add(30 * time.Second)
	for {
		var m modelReply
		must(t, ts.get("/v1/model"), 200).json(t, &m)
		if m.SolveError != "" {
			if !strings.Contains(m.SolveError, "2 samples") || m.ModelVersion != 0 {
				t.Fatalf("solve error %q at version %d", m.SolveError, m.ModelVersion)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no re-solve attempt")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if r := ts.postJSON("/v1/predict", predictRequest{Features: [][]float32{w.sample(0).Features}}); r.code != 409 {
		t.Fatalf("predict before any solved class: %d %s", r.code, r.body)
	}
	var lr learnReply
	must(t, ts.postJSON("/v1/learn", learnRequest{Samples: []learnSample{w.sample(1)}}), 200).json(t, &lr)
	waitVersion(t, ts, lr.Seq)
	must(t, ts.postJSON("/v1/predict", predictRequest{Features: [][]float32{w.sample(0).Features}}), 200)
}
