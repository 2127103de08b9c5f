package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cl-dev/cl/heads"
)

// TestExport: cl export writes an inference-only head whose cl predict
// output equals the full head's byte for byte; learning, forgetting and
// merging it are refused with the documented message; bad flags are clear.
func TestExport(t *testing.T) {
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	names := classNames(10)
	writeClusters(t, p("train.safetensors"), names, nil, 4, 16, 0, "mnv2")
	writeClusters(t, p("test.safetensors"), names, nil, 30, 16, 0.05, "mnv2")
	for _, m := range []struct{ method, opt string }{{"ranpac", "M=300"}, {"simplecil", ""}, {"lda", "shrinkage=0.01"}, {"fecam", "variant=paper"}} {
		full, exp := p(m.method+".safetensors"), p(m.method+"-e.safetensors")
		args := []string{"fit", "--method", m.method, "--features", p("train.safetensors"), "--head", full}
		if m.opt != "" {
			args = append(args, "--set", m.opt)
		}
		if _, stderr, err := runHeadsCL(args...); err != nil {
			t.Fatalf("fit %s: %v %s", m.method, err, stderr)
		}
		out, stderr, err := runHeadsCL("export", "--head", full, "--out", exp)
		if err != nil {
			t.Fatalf("export %s: %v %s", m.method, err, stderr)
		}
		if !strings.Contains(out, "inference only") {
			t.Errorf("export output: %q", out)
		}
		h, _, err := heads.Load(exp)
		if err != nil || !heads.InferenceOnly(h) {
			t.Fatalf("%s: loaded export: inference-only %v, %v", m.method, h != nil && heads.InferenceOnly(h), err)
		}
		var csv [2][]byte
		for i, head := range []string{full, exp} {
			o := p(m.method + "-" + string(rune('0'+i)) + ".csv")
			if _, stderr, err := runHeadsCL("predict", "--head", head, "--features", p("test.safetensors"), "--top", "3", "--out", o); err != nil {
				t.Fatalf("predict %s with %s: %v %s", m.method, head, err, stderr)
			}
			csv[i], _ = os.ReadFile(o)
		}
		if len(csv[0]) == 0 || string(csv[0]) != string(csv[1]) {
			t.Errorf("%s: predictions of the exported head differ from the full head's", m.method)
		}
		if m.method == "ranpac" {
			fs, _ := os.Stat(full)
			es, _ := os.Stat(exp)
			if es.Size()*10 > fs.Size() {
				t.Errorf("ranpac M=300: export %d bytes, full %d", es.Size(), fs.Size())
			}
		}
		before, _ := os.ReadFile(exp)
		for _, a := range [][]string{
			{"fit", "--features", p("train.safetensors"), "--head", exp},
			{"forget", "--head", exp, "--class", names[0]},
			{"merge", full, exp, "--out", p("merged.safetensors")},
		} {
			_, stderr, err := runHeadsCL(a...)
			if err == nil || !strings.Contains(err.Error()+stderr, "inference-only head exported by cl export: learn with the full head file") {
				t.Errorf("%s %s on the exported head: %v %s", m.method, a[0], err, stderr)
			}
		}
		if after, _ := os.ReadFile(exp); string(after) != string(before) {
			t.Errorf("%s: a refused command changed the exported file", m.method)
		}
	}
	if _, _, err := runHeadsCL("export", "--head", p("ranpac.safetensors"), "--out", p("ranpac.safetensors")); err == nil || !strings.Contains(err.Error(), "--head itself") {
		t.Errorf("export onto itself: %v", err)
	}
	if _, _, err := runHeadsCL("export", "--head", p("missing.safetensors"), "--out", p("x.safetensors")); err == nil || !strings.Contains(err.Error(), "--head") {
		t.Errorf("missing head: %v", err)
	}
	if _, _, err := runHeadsCL("export", "--head", p("ranpac.safetensors")); err == nil || !strings.Contains(err.Error(), "out") {
		t.Errorf("no --out: %v", err)
	}
}

// TestExportPredictImages: cl predict --model from images gives the same CSV
// with the exported head as with the full one (RanPAC and SimpleCIL).
func TestExportPredictImages(t *testing.T) {
	needORT(t)
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	for i, n := range []string{"img_rgb.jpg", "img_grey.png", "img_palette.gif", "img_rgba.png", "img_bmp.bmp", "img_wide.png"} {
		cls := []string{"a", "b", "c"}[i%3]
		os.MkdirAll(p("imgs/"+cls), 0o755)
		b, err := os.ReadFile(filepath.Join("../testdata/tinyvit", n))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(p("imgs/"+cls+"/"+n), b, 0o644)
	}
	run := func(args ...string) string {
		t.Helper()
		out, stderr, err := runCLErr(args...)
		if err != nil {
			t.Fatalf("cl %v: %v\n%s", args, err, stderr)
		}
		return out
	}
	run("extract", "--model", serveTiny, "--data", p("imgs"), "--out", p("f.safetensors"), "--threads", "1")
	for _, m := range [][]string{{"ranpac", "M=64", "lambda=1"}, {"simplecil"}} {
		args := []string{"fit", "--method", m[0], "--features", p("f.safetensors"), "--head", p(m[0] + ".safetensors")}
		for _, o := range m[1:] {
			args = append(args, "--set", o)
		}
		run(args...)
		run("export", "--head", p(m[0]+".safetensors"), "--out", p(m[0]+"-e.safetensors"))
		want := run("predict", "--head", p(m[0]+".safetensors"), "--model", serveTiny, "--data", p("imgs"), "--top", "3", "--threads", "1")
		got := run("predict", "--head", p(m[0]+"-e.safetensors"), "--model", serveTiny, "--data", p("imgs"), "--top", "3", "--threads", "1")
		if got != want || strings.Count(got, "\n") != 7 {
			t.Errorf("%s: exported head from images:\n%s\nfull head:\n%s", m[0], got, want)
		}
	}
}
