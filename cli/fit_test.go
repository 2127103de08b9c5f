package cli

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/cl-dev/cl/heads"
)

func evalJSON(t *testing.T, head, feats string) EvalReport {
	t.Helper()
	out, stderr, err := runHeadsCL("eval", "--head", head, "--features", feats, "--json")
	if err != nil {
		t.Fatalf("eval: %v\n%s", err, stderr)
	}
	var r EvalReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	return r
}

// TestFitEvalMergeForget drives the head commands end to end on synthetic
// feature files.
func TestFitEvalMergeForget(t *testing.T) {
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	names := classNames(10)
	writeClusters(t, p("a.safetensors"), names, []int{0, 1, 2, 3, 4}, 4, 16, 0, "mnv2")
	writeClusters(t, p("b.safetensors"), names, []int{5, 6, 7, 8, 9}, 4, 16, 0.02, "mnv2")
	writeClusters(t, p("test.safetensors"), names, nil, 2, 16, 0.01, "mnv2")
	// A file listing the same classes in another order: names must be mapped.
	rev := make([]string, 10)
	for i := range rev {
		rev[i] = names[9-i]
	}
	writeClusters(t, p("brev.safetensors"), rev, []int{0, 1, 2, 3, 4}, 4, 16, 0.02, "mnv2") // = classes 9..5

	// fit A, then the reversed-list B, into one head.
	out, stderr, err := runHeadsCL("fit", "--method", "simplecil", "--features", p("a.safetensors"), "--head", p("h.safetensors"))
	if err != nil || !strings.Contains(out, "created") {
		t.Fatalf("fit: %v %s %s", err, out, stderr)
	}
	r := evalJSON(t, p("h.safetensors"), p("test.safetensors"))
	if r.Rows != 10 || r.Unknown != 10 || r.Top1 != 100 || len(r.PerClass) != 5 || len(r.UnknownClasses) != 5 {
		t.Errorf("eval after A: %+v", r)
	}
	if out, _, err := runHeadsCL("fit", "--features", p("brev.safetensors"), "--head", p("h.safetensors")); err != nil || !strings.Contains(out, "updated") {
		t.Fatalf("fit B: %v %s", err, out)
	}
	r = evalJSON(t, p("h.safetensors"), p("test.safetensors"))
	if r.Rows != 20 || r.Unknown != 0 || r.Top1 != 100 || r.Top5 != 100 || r.K != 5 || r.PerClass[9].Class != "class09" {
		t.Errorf("eval after A+B: %+v", r)
	}
	_, info, err := heads.Load(p("h.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	// Class list: A's names (all 10, in A's order) — B's names were already listed.
	if !reflect.DeepEqual(info.Classes, names) {
		t.Errorf("classes %v", info.Classes)
	}
	// Table output names classes.
	if out, _, err := runHeadsCL("eval", "--head", p("h.safetensors"), "--features", p("test.safetensors")); err != nil || !strings.Contains(out, "class07") || !strings.Contains(out, "top-1 100.00 %") {
		t.Errorf("eval table: %v\n%s", err, out)
	}

	// merge: a head on A plus a head on B equals the head on A then B.
	runHeadsCL("fit", "--method", "simplecil", "--features", p("a.safetensors"), "--head", p("ha.safetensors"))
	runHeadsCL("fit", "--method", "simplecil", "--features", p("b.safetensors"), "--head", p("hb.safetensors"))
	if out, stderr, err := runHeadsCL("merge", p("ha.safetensors"), p("hb.safetensors"), "--out", p("hab.safetensors")); err != nil {
		t.Fatalf("merge: %v %s %s", err, out, stderr)
	}
	ra, rb := evalJSON(t, p("hab.safetensors"), p("test.safetensors")), evalJSON(t, p("h.safetensors"), p("test.safetensors"))
	ra.Head, rb.Head = "", ""
	if !reflect.DeepEqual(ra, rb) {
		t.Errorf("merged head differs:\n%+v\n%+v", ra, rb)
	}
	// A head fitted from the reversed class list numbers classes differently:
	// classes are matched by name, and the result is the same head.
	runHeadsCL("fit", "--method", "simplecil", "--features", p("brev.safetensors"), "--head", p("hrev.safetensors"))
	if _, stderr, err := runHeadsCL("merge", p("ha.safetensors"), p("hrev.safetensors"), "--out", p("hrevm.safetensors")); err != nil || !strings.Contains(stderr, "matched by name") {
		t.Fatalf("merge of differently numbered heads: %v %s", err, stderr)
	}
	rr := evalJSON(t, p("hrevm.safetensors"), p("test.safetensors"))
	rr.Head = ""
	if !reflect.DeepEqual(rr, rb) {
		t.Errorf("merged renumbered head differs:\n%+v\n%+v", rr, rb)
	}
	// Heads fitted on files that list only their own classes (labels 0…4 in
	// both): the distributed case.
	writeClusters(t, p("lo.safetensors"), names[:5], nil, 4, 16, 0, "mnv2")
	writeClusters(t, p("hi.safetensors"), names[5:], nil, 4, 16, 0.02, "mnv2")
	runHeadsCL("fit", "--method", "simplecil", "--features", p("lo.safetensors"), "--head", p("hlo.safetensors"))
	runHeadsCL("fit", "--method", "simplecil", "--features", p("hi.safetensors"), "--head", p("hhi.safetensors"))
	if _, stderr, err := runHeadsCL("merge", p("hlo.safetensors"), p("hhi.safetensors"), "--out", p("hlohi.safetensors")); err != nil {
		t.Fatalf("merge of disjoint class lists: %v %s", err, stderr)
	}
	rd := evalJSON(t, p("hlohi.safetensors"), p("test.safetensors"))
	rd.Head = ""
	if !reflect.DeepEqual(rd, rb) {
		t.Errorf("merged disjoint heads differ:\n%+v\n%+v", rd, rb)
	}
	runHeadsCL("fit", "--method", "ncm", "--features", p("b.safetensors"), "--head", p("hncm.safetensors"))
	if _, _, err := runHeadsCL("merge", p("ha.safetensors"), p("hncm.safetensors"), "--out", p("x.safetensors")); err == nil || !strings.Contains(err.Error(), "same method") {
		t.Errorf("method mismatch merge: %v", err)
	}

	// forget --class, to --out; the original is untouched.
	if out, _, err := runHeadsCL("forget", "--head", p("h.safetensors"), "--class", "class03", "--class", "class07", "--out", p("h8.safetensors")); err != nil || !strings.Contains(out, "8 classes left") {
		t.Fatalf("forget --class: %v %s", err, out)
	}
	r = evalJSON(t, p("h8.safetensors"), p("test.safetensors"))
	if r.Unknown != 4 || !reflect.DeepEqual(r.UnknownClasses, []string{"class03", "class07"}) || r.Top1 != 100 {
		t.Errorf("after forget --class: %+v", r)
	}
	if r := evalJSON(t, p("h.safetensors"), p("test.safetensors")); r.Unknown != 0 {
		t.Errorf("--out changed the input head")
	}
	if _, _, err := runHeadsCL("forget", "--head", p("h8.safetensors"), "--class", "class03"); err == nil || !strings.Contains(err.Error(), "no such class") {
		t.Errorf("forget unknown class: %v", err)
	}
	// forget --features: unlearning B's rows leaves exactly the head on A.
	if _, stderr, err := runHeadsCL("forget", "--head", p("hab.safetensors"), "--features", p("b.safetensors")); err != nil {
		t.Fatalf("forget --features: %v %s", err, stderr)
	}
	ra, rb = evalJSON(t, p("hab.safetensors"), p("test.safetensors")), evalJSON(t, p("ha.safetensors"), p("test.safetensors"))
	ra.Head, rb.Head = "", ""
	if !reflect.DeepEqual(ra, rb) {
		t.Errorf("unlearned head differs from the head on A:\n%+v\n%+v", ra, rb)
	}
}

func TestFitErrors(t *testing.T) {
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	writeClusters(t, p("a.safetensors"), classNames(4), nil, 3, 8, 0, "mnv2")
	writeClusters(t, p("other.safetensors"), classNames(4), nil, 3, 8, 0, "vitb")
	writeClusters(t, p("wide.safetensors"), classNames(4), nil, 3, 12, 0, "mnv2")
	usage := func(err error) bool { var ue UsageError; return errors.As(err, &ue) }
	if _, _, err := runHeadsCL("fit", "--features", p("a.safetensors"), "--head", p("h.safetensors")); !usage(err) || !strings.Contains(err.Error(), "--method is required") {
		t.Errorf("no method: %v", err)
	}
	if _, _, err := runHeadsCL("fit", "--method", "ncm", "--features", p("a.safetensors"), "--head", p("h.safetensors"), "--set", "M=3"); !usage(err) || !strings.Contains(err.Error(), "unknown option") {
		t.Errorf("bad option: %v", err)
	}
	if _, _, err := runHeadsCL("fit", "--method", "ncm", "--features", p("a.safetensors"), "--head", p("h.safetensors")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runHeadsCL("fit", "--method", "simplecil", "--features", p("a.safetensors"), "--head", p("h.safetensors")); !usage(err) || !strings.Contains(err.Error(), "is an ncm head") {
		t.Errorf("method mismatch: %v", err)
	}
	if _, _, err := runHeadsCL("fit", "--features", p("other.safetensors"), "--head", p("h.safetensors")); err == nil || !strings.Contains(err.Error(), "model") {
		t.Errorf("other model: %v", err)
	}
	if _, _, err := runHeadsCL("fit", "--features", p("wide.safetensors"), "--head", p("h.safetensors")); err == nil || !strings.Contains(err.Error(), "dimension") {
		t.Errorf("other dimension: %v", err)
	}
	if _, _, err := runHeadsCL("eval", "--head", p("h.safetensors"), "--features", p("other.safetensors")); err == nil || !strings.Contains(err.Error(), "model") {
		t.Errorf("eval other model: %v", err)
	}
	if _, _, err := runHeadsCL("fit", "--method", "ncm", "--features", p("a.safetensors")); !usage(err) || !strings.Contains(err.Error(), "--head") {
		t.Errorf("missing --head: %v", err)
	}
	if _, _, err := runHeadsCL("forget", "--head", p("h.safetensors")); !usage(err) {
		t.Errorf("forget without --class/--features: %v", err)
	}
	if _, _, err := runHeadsCL("merge", p("h.safetensors"), "--out", p("x.safetensors")); !usage(err) {
		t.Errorf("merge with one head: %v", err)
	}
	if _, _, err := runHeadsCL("fit", "--method", "ncm", "--features", p("missing.safetensors"), "--head", p("h2.safetensors")); err == nil || !strings.Contains(err.Error(), "missing.safetensors") {
		t.Errorf("missing features: %v", err)
	}
}

// APER: two feature files joined by sample id.
func TestFitAPERTwoFiles(t *testing.T) {
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	writeClusters(t, p("ptm.safetensors"), classNames(4), nil, 3, 8, 0, "mnv2")
	writeClusters(t, p("ada.safetensors"), classNames(4), nil, 3, 6, 0, "adpt")
	writeClusters(t, p("ptm_t.safetensors"), classNames(4), nil, 2, 8, 0.01, "mnv2")
	writeClusters(t, p("ada_t.safetensors"), classNames(4), nil, 2, 6, 0.01, "adpt")
	if _, stderr, err := runHeadsCL("fit", "--method", "aper", "--features", p("ptm.safetensors")+","+p("ada.safetensors"), "--head", p("h.safetensors")); err != nil {
		t.Fatalf("%v %s", err, stderr)
	}
	r := evalJSON(t, p("h.safetensors"), p("ptm_t.safetensors")+","+p("ada_t.safetensors"))
	if r.Top1 != 100 || r.Rows != 8 {
		t.Errorf("aper eval %+v", r)
	}
	if _, _, err := runHeadsCL("eval", "--head", p("h.safetensors"), "--features", p("ptm_t.safetensors")); err == nil {
		t.Error("aper head accepted one-branch features")
	}
}

// TestMergeForgetSolvedHeads: merge and forget work for heads that solve a
// system (RanPAC needed a new stage before heads.Refresh), and merging two
// heads equals fitting both files into one head.
func TestMergeForgetSolvedHeads(t *testing.T) {
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	names := classNames(10)
	writeClusters(t, p("a.safetensors"), names, []int{0, 1, 2, 3, 4}, 4, 16, 0, "mnv2")
	writeClusters(t, p("b.safetensors"), names, []int{5, 6, 7, 8, 9}, 4, 16, 0.02, "mnv2")
	writeClusters(t, p("test.safetensors"), names, nil, 2, 16, 0.01, "mnv2")
	for _, m := range []struct{ method, opt string }{{"ranpac", "M=100"}, {"lda", "shrinkage=0.01"}, {"fecam", "variant=paper"}} {
		fit := func(head string, files ...string) {
			for i, f := range files {
				args := []string{"fit", "--features", p(f), "--head", p(head)}
				if i == 0 {
					args = append(args, "--method", m.method, "--set", m.opt)
				}
				if _, stderr, err := runHeadsCL(args...); err != nil {
					t.Fatalf("%s fit %s: %v %s", m.method, f, err, stderr)
				}
			}
		}
		fit(m.method+"a", "a.safetensors")
		fit(m.method+"b", "b.safetensors")
		fit(m.method+"ab", "a.safetensors", "b.safetensors")
		if out, stderr, err := runHeadsCL("merge", p(m.method+"a"), p(m.method+"b"), "--out", p(m.method+"m")); err != nil {
			t.Fatalf("%s merge: %v %s %s", m.method, err, out, stderr)
		}
		got, want := evalJSON(t, p(m.method+"m"), p("test.safetensors")), evalJSON(t, p(m.method+"ab"), p("test.safetensors"))
		got.Head, want.Head = "", ""
		if !reflect.DeepEqual(got, want) || got.Rows != 20 {
			t.Errorf("%s: merged head %+v, fitted on both %+v", m.method, got, want)
		}
		if out, stderr, err := runHeadsCL("forget", "--head", p(m.method+"m"), "--features", p("b.safetensors"), "--out", p(m.method+"f")); err != nil {
			t.Fatalf("%s forget: %v %s %s", m.method, err, out, stderr)
		}
		if r := evalJSON(t, p(m.method+"f"), p("test.safetensors")); r.Rows != 10 || r.Unknown != 10 || r.Top1 != 100 {
			t.Errorf("%s after forgetting b: %+v", m.method, r)
		}
	}
}
