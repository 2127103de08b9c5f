package cli

import (
	"encoding/csv"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cl-dev/cl/heads"
)

func readCSV(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// TestPredict: cl predict writes one CSV row per feature row whose top-k
// are the head's best-scored classes (checked against Scores), the same
// whatever the number of threads, and reports the accuracy on stderr.
func TestPredict(t *testing.T) {
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	names := classNames(10)
	writeClusters(t, p("train.safetensors"), names, nil, 4, 16, 0, "mnv2")
	test := writeClusters(t, p("test.safetensors"), names, nil, 250, 16, 0.01, "mnv2") // 2,500 rows: several chunks
	for _, m := range []string{"simplecil", "ncm", "lda", "ranpac"} {
		head := p(m + ".safetensors")
		args := []string{"fit", "--method", m, "--features", p("train.safetensors"), "--head", head}
		if m == "ranpac" {
			args = append(args, "--set", "M=200") // no Ranker: the Scores path
		}
		if _, stderr, err := runHeadsCL(args...); err != nil {
			t.Fatalf("fit %s: %v %s", m, err, stderr)
		}
		h, info, err := heads.Load(head)
		if err != nil {
			t.Fatal(err)
		}
		scores, err := h.Scores(test.X)
		if err != nil {
			t.Fatal(err)
		}
		c := len(h.Classes())
		var outs [][][]string
		for _, threads := range []string{"1", "3"} {
			out := p(m + "-" + threads + ".csv")
			_, stderr, err := runHeadsCL("predict", "--head", head, "--features", p("test.safetensors"), "--top", "2", "--out", out, "--threads", threads)
			if err != nil {
				t.Fatalf("predict %s: %v %s", m, err, stderr)
			}
			if !strings.Contains(stderr, "top1_percent=100.00") || !strings.Contains(stderr, "rows=2500") {
				t.Errorf("%s summary: %s", m, stderr)
			}
			recs := readCSV(t, out)
			if len(recs) != test.N+1 || strings.Join(recs[0], ",") != "row,id,label,pred_1,pred_2" {
				t.Fatalf("%s: %d records, header %v", m, len(recs), recs[0])
			}
			for i, rec := range recs[1:] {
				row := scores[i*c : (i+1)*c]
				best, second := 0, -1
				for j := 1; j < c; j++ {
					if row[j] > row[best] {
						best, second = j, best
					} else if second < 0 || row[j] > row[second] {
						second = j
					}
				}
				want := []string{info.Classes[h.Classes()[best]], info.Classes[h.Classes()[second]]}
				if rec[1] != test.IDs[i] || rec[2] != names[test.Labels[i]] || rec[3] != want[0] || rec[4] != want[1] {
					t.Fatalf("%s row %d: %v, want id %s label %s preds %v", m, i, rec, test.IDs[i], names[test.Labels[i]], want)
				}
			}
			outs = append(outs, recs)
		}
		for i := range outs[0] {
			if strings.Join(outs[0][i], ",") != strings.Join(outs[1][i], ",") {
				t.Fatalf("%s: 1 and 3 threads differ at record %d", m, i)
			}
		}
	}
}

// TestPredictErrors: bad flags and mismatched files are clear errors that
// name the flag or file, and no output file is left behind.
func TestPredictErrors(t *testing.T) {
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	names := classNames(4)
	writeClusters(t, p("train.safetensors"), names, nil, 3, 8, 0, "mnv2")
	writeClusters(t, p("other.safetensors"), names, nil, 3, 8, 0, "vitb")
	if _, stderr, err := runHeadsCL("fit", "--method", "ncm", "--features", p("train.safetensors"), "--head", p("h.safetensors")); err != nil {
		t.Fatal(err, stderr)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--features", p("train.safetensors")}, "--head is required"},
		{[]string{"--head", p("h.safetensors"), "--features", p("train.safetensors"), "--top", "0"}, "--top 0"},
		{[]string{"--head", p("h.safetensors"), "--features", p("train.safetensors"), "--top", "5"}, "has 4 classes"},
		{[]string{"--head", p("h.safetensors"), "--features", p("train.safetensors"), "--threads", "-1"}, "--threads -1"},
		{[]string{"--head", p("h.safetensors"), "--features", p("other.safetensors"), "--out", p("x.csv")}, "other.safetensors"},
		{[]string{"--head", p("missing.safetensors"), "--features", p("train.safetensors")}, "--head"},
		{[]string{"--head", p("h.safetensors"), "--features", p("train.safetensors"), "--out", p("no/such/dir/x.csv")}, "--out"},
	} {
		_, _, err := runHeadsCL(append([]string{"predict"}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("predict %v: error %v, want it to mention %q", tc.args, err, tc.want)
		}
	}
	if _, err := os.Stat(p("x.csv")); !os.IsNotExist(err) {
		t.Errorf("a failed predict left x.csv behind: %v", err)
	}
}
