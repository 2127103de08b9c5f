package serve

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/cl-dev/cl/features"
	"github.com/cl-dev/cl/heads"
)

// snapshotFiles returns the head and samples files state.json names.
func snapshotFiles(t testing.TB, dir string) (head, samples string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	var sf stateFile
	if err := json.Unmarshal(b, &sf); err != nil {
		t.Fatal(err)
	}
	if sf.Samples != "" {
		samples = filepath.Join(dir, sf.Samples)
	}
	return filepath.Join(dir, sf.Head), samples
}

// ledgerEntry is one ledger entry with its class name.
type ledgerEntry struct {
	id, class string
	hash      [32]byte
}

// ledgerOf reads the ledger of a head file (nil when it has none).
func ledgerOf(t testing.TB, path string) []ledgerEntry {
	t.Helper()
	_, info, err := heads.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Ledger == nil {
		return nil
	}
	out := []ledgerEntry{}
	for i := 0; i < info.Ledger.Len(); i++ {
		id, l, h := info.Ledger.Entry(i)
		out = append(out, ledgerEntry{id, info.Classes[l], h})
	}
	return out
}

func checkLedger(t testing.TB, when string, got, want []ledgerEntry) {
	t.Helper()
	if got == nil {
		t.Fatalf("%s: the head file has no ledger", when)
	}
	if len(got) != len(want) {
		t.Fatalf("%s: ledger has %d rows, want %d: %v", when, len(got), len(want), got)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s: ledger row %d is %q %q %x…, want %q %q %x…", when, i, got[i].id, got[i].class, got[i].hash[:4],
				want[i].id, want[i].class, want[i].hash[:4])
		}
	}
}

// TestSnapshotLedger: head files the server writes carry the ledger cl fit
// writes — every learned row's id, class and the SHA-256 of its feature
// row, in learning order — for samples learned as features (the values
// sent) and as images (the backbone's features of the decoded image,
// computed here independently); forgetting by id and by class removes
// entries; a crash (journal replay), a restart and a head file without a
// ledger (older state folder, rebuilt from the samples) give the same one.
func TestSnapshotLedger(t *testing.T) {
	dir := t.TempDir()
	ts := startServer(t, dir, Config{Insecure: true, SnapshotEvery: 1 << 30}, newHead(t, "simplecil"))
	w := newWorld(5, 32)
	var want []ledgerEntry
	entry := func(id, class string, x []float32) ledgerEntry { return ledgerEntry{id, class, heads.RowHash(x)} }

	feats := []learnSample{w.sample(0), w.sample(1), w.sample(0), w.sample(2)}
	must(t, ts.postJSON("/v1/learn", learnRequest{Samples: feats}), 200)
	for _, s := range feats {
		want = append(want, entry(s.ID, s.Class, s.Features))
	}
	imgs := tinyImages(t)[:2]
	body, ct := multipartBody(t, map[string]string{"samples": `[{"id":"img0","class":"class1"},{"id":"img1","class":"class3"}]`}, imgs)
	must(t, ts.do("POST", "/v1/learn", ct, body, testToken), 200)
	per := ts.s.dec.pp.Len()
	for i, im := range imgs {
		x := make([]float32, per)
		if err := ts.s.dec.decode(im.data, x, im.name); err != nil {
			t.Fatal(err)
		}
		y, err := ts.bb.Run(x, 1)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, entry([]string{"img0", "img1"}[i], []string{"class1", "class3"}[i], y))
	}
	// Forget one id (class0 is rebuilt from its remaining sample: the
	// ledger keeps learning order) and the class of another.
	must(t, ts.postJSON("/v1/forget", forgetRecord{IDs: []string{feats[0].ID}}), 200)
	must(t, ts.postJSON("/v1/forget", forgetRecord{Classes: []string{"class2"}}), 200)
	want = append(want[1:3:3], want[4:]...)

	ts.close()
	head, samples := snapshotFiles(t, dir)
	checkLedger(t, "after shutdown", ledgerOf(t, head), want)
	// The samples file holds exactly the rows the ledger hashes.
	set, err := features.Read(samples)
	if err != nil {
		t.Fatal(err)
	}
	var fromFile []ledgerEntry
	for i := 0; i < set.N; i++ {
		fromFile = append(fromFile, entry(set.IDs[i], set.Classes[set.Labels[i]], set.Row(i)))
	}
	checkLedger(t, "samples file", fromFile, want)

	// A crash after more changes: replay rebuilds the same ledger.
	ts.restart()
	s5 := w.sample(3)
	must(t, ts.postJSON("/v1/learn", learnRequest{Samples: []learnSample{s5}}), 200)
	must(t, ts.postJSON("/v1/forget", forgetRecord{IDs: []string{"img0"}}), 200)
	want = append(append(want[:2:2], want[3:]...), entry(s5.ID, s5.Class, s5.Features))
	ts.crash()
	ts.restart()
	ts.close()
	head, _ = snapshotFiles(t, dir)
	checkLedger(t, "after a crash and replay", ledgerOf(t, head), want)

	// A snapshot head without a ledger (a state folder from before server
	// heads kept one): rebuilt from the samples at the next start.
	h, info, err := heads.Load(head)
	if err != nil {
		t.Fatal(err)
	}
	info.Ledger = nil
	if err := heads.Save(head, h, info); err != nil {
		t.Fatal(err)
	}
	ts.restart()
	ts.postJSON("/v1/forget", forgetRecord{IDs: []string{s5.ID}}) // a change, so that shutdown snapshots
	ts.close()
	head, _ = snapshotFiles(t, dir)
	checkLedger(t, "rebuilt", ledgerOf(t, head), want[:len(want)-1])
}

// TestInitialHeadLedger: the ledger of the initial head file is carried
// over: its ids are not learned twice (same class: a duplicate; another
// class: 409), cannot be forgotten by id (the server has not their
// features: 409 cannot_forget, nothing changes), and leave with their
// class; the written ledger is the file's entries, then the server's.
func TestInitialHeadLedger(t *testing.T) {
	dir := t.TempDir()
	w := newWorld(9, 32)
	off := []learnSample{w.sample(0), w.sample(1), w.sample(0)}
	h, _, err := newHead(t, "simplecil")()
	if err != nil {
		t.Fatal(err)
	}
	set := &features.Set{N: len(off), D: 32, IDs: []string{off[0].ID, off[1].ID, off[2].ID}}
	y := []int{0, 1, 0}
	for _, s := range off {
		set.X = append(set.X, s.Features...)
	}
	if err := h.Learn(set.X, y); err != nil {
		t.Fatal(err)
	}
	rows, err := heads.NewLedgerRows(set, y)
	if err != nil {
		t.Fatal(err)
	}
	_, bbi := tinyBackbone(t)
	info := heads.Info{Classes: []string{"class0", "class1"}, Model: bbi.Name, ModelSHA256: bbi.SHA256, Fingerprint: bbi.Fingerprint,
		Ledger: heads.NewLedger()}
	info.Ledger.Add(rows)
	file := filepath.Join(dir, "initial.safetensors")
	if err := heads.Save(file, h, info); err != nil {
		t.Fatal(err)
	}
	var want []ledgerEntry
	for _, s := range off {
		want = append(want, ledgerEntry{s.ID, s.Class, heads.RowHash(s.Features)})
	}
	state := filepath.Join(dir, "state")
	ts := startServer(t, state, Config{Insecure: true, SnapshotEvery: 1 << 30},
		func() (heads.Head, heads.Info, error) { return heads.Load(file) })

	var lr learnReply
	must(t, ts.postJSON("/v1/learn", learnRequest{Samples: []learnSample{off[0]}}), 200).json(t, &lr)
	if lr.Learned != 0 || lr.Duplicates != 1 {
		t.Errorf("learning an id of the initial head again: %+v, want a duplicate", lr)
	}
	other := off[1]
	other.Class = "class0"
	if r := ts.postJSON("/v1/learn", learnRequest{Samples: []learnSample{other}}); r.code != 409 || r.errCode() != "id_conflict" {
		t.Errorf("learning an id of the initial head as another class: %d %s", r.code, r.body)
	}
	if r := ts.postJSON("/v1/forget", forgetRecord{IDs: []string{off[1].ID}}); r.code != 409 || r.errCode() != "cannot_forget" {
		t.Errorf("forgetting an id of the initial head: %d %s", r.code, r.body)
	}
	fresh := []learnSample{w.sample(1), w.sample(2)}
	must(t, ts.postJSON("/v1/learn", learnRequest{Samples: fresh}), 200)
	for _, s := range fresh {
		want = append(want, ledgerEntry{s.ID, s.Class, heads.RowHash(s.Features)})
	}
	ts.close()
	head, _ := snapshotFiles(t, state)
	checkLedger(t, "initial head's entries, then the server's", ledgerOf(t, head), want)

	// Forgetting class0 removes its initial entries; its ids may be
	// learned again.
	ts.restart()
	must(t, ts.postJSON("/v1/forget", forgetRecord{Classes: []string{"class0"}}), 200)
	again := off[0]
	again.Class = "class2"
	must(t, ts.postJSON("/v1/learn", learnRequest{Samples: []learnSample{again}}), 200).json(t, &lr)
	if lr.Learned != 1 {
		t.Errorf("learning a forgotten initial id: %+v", lr)
	}
	ts.close()
	head, _ = snapshotFiles(t, state)
	checkLedger(t, "after forgetting class0", ledgerOf(t, head),
		[]ledgerEntry{want[1], want[3], want[4], {again.ID, "class2", heads.RowHash(again.Features)}})
}
