package cli

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cl-dev/cl/features"
)

// runCLErr runs cl with args and returns stdout, stderr and the error.
func runCLErr(args ...string) (string, string, error) {
	var out, errb bytes.Buffer
	err := NewApp(&out, &errb).Run(append([]string{"cl"}, args...))
	return out.String(), errb.String(), err
}

// imageFolder writes DIR/{cat,dog}/… PNGs (and one corrupt cat/zz.png).
func imageFolder(t *testing.T) string {
	dir := t.TempDir()
	for k, name := range []string{"cat/a.png", "cat/b.png", "dog/c.png", "dog/d.PNG", "dog/e.png"} {
		img := image.NewNRGBA(image.Rect(0, 0, 40+k, 30))
		for y := 0; y < 30; y++ {
			for x := 0; x < 40+k; x++ {
				img.Set(x, y, color.NRGBA{uint8(x * 6), uint8(y*8 + k*40), uint8(k * 50), 255})
			}
		}
		var b bytes.Buffer
		png.Encode(&b, img)
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(dir, "cat/zz.png"), []byte("\x89PNG\r\n\x1a\nbroken"), 0o644)
	return dir
}

func TestExtractCommand(t *testing.T) {
	needORTLib(t)
	dir := imageFolder(t)
	out := filepath.Join(t.TempDir(), "f.safetensors")
	stdout, stderr, err := runCLErr("extract", "--model", tinyViTPath, "--data", dir, "--out", out, "--batch", "2", "--workers", "2", "--threads", "1")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	if !strings.Contains(stdout, "wrote "+out+": 5 rows × 32 features, 2 classes, 1 skipped") {
		t.Fatalf("stdout %q", stdout)
	}
	if !strings.Contains(stderr, "skipped 1 unreadable image:\n  "+filepath.Join(dir, "cat/zz.png")+": ") ||
		!strings.Contains(stderr, "level=WARN msg=\"skipping image\" id=cat/zz.png") {
		t.Fatalf("stderr %q", stderr)
	}
	s, err := features.Read(out)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(s.IDs, " ") != "cat/a.png cat/b.png dog/c.png dog/d.PNG dog/e.png" || strings.Join(s.Classes, " ") != "cat dog" ||
		s.Source != dir || s.Model != "tinyvit.onnx" || s.Labels[1] != 0 || s.Labels[2] != 1 {
		t.Fatalf("file: ids %v classes %v source %q model %q labels %v", s.IDs, s.Classes, s.Source, s.Model, s.Labels)
	}

	// --limit: the first images in data order.
	stdout, stderr, err = runCLErr("extract", "--model", tinyViTPath, "--data", dir, "--out", out, "--limit", "2")
	if err != nil || !strings.Contains(stdout, ": 2 rows × 32 features") {
		t.Fatalf("--limit: %v %q %q", err, stdout, stderr)
	}

	// --strict: fails on the corrupt file, writes nothing.
	out2 := filepath.Join(t.TempDir(), "g.safetensors")
	_, _, err = runCLErr("extract", "--model", tinyViTPath, "--data", dir, "--out", out2, "--strict")
	if err == nil || !strings.Contains(err.Error(), "zz.png") || !strings.Contains(err.Error(), "--strict") {
		t.Fatalf("--strict: %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(out2)); len(entries) != 0 {
		t.Fatalf("--strict left %v", entries)
	}
}

func TestExtractCommandErrors(t *testing.T) {
	dir := imageFolder(t)
	out := filepath.Join(t.TempDir(), "f.safetensors")
	usage := [][]string{
		{"extract", "--model", "m.onnx", "--data", dir},
		{"extract", "--data", dir, "--out", out},
		{"extract", "--model", "m.onnx", "--data", dir, "--out", out, "--batch", "0"},
		{"extract", "--model", "m.onnx", "--data", dir, "--out", out, "--limit", "-1"},
		{"extract", "--model", "m.onnx", "--data", dir, "--out", out, "stray"},
		{"extract", "--model", "m.onnx", "--data", dir, "--out", out, "--device", "tpu"},
		{"extract", "--model", "m.onnx", "--data", dir, "--out", out, "--bogus"},
		{"extract", "--model", "m.onnx", "--out", out},
		{"extract", "--model", "m.onnx", "--data", dir, "--out", out, "--decode-memory", "0"},
		{"extract", "--model", "m.onnx", "--data", dir, "--out", out, "--buffer-memory", "-1"},
	}
	for _, args := range usage {
		_, _, err := runCLErr(args...)
		var ue UsageError
		if !errors.As(err, &ue) {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
	// Data and output are checked before the model is even read.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--data", filepath.Join(dir, "nope"), "--out", out}, "nope: no such file or directory"},
		{[]string{"--data", "cifar100:" + dir, "--out", out}, "has neither fine_label_names.txt"},
		{[]string{"--data", "idx:a.gz", "--out", out}, "want idx:IMAGES,LABELS"},
		{[]string{"--data", dir, "--out", filepath.Join(dir, "no", "such", "f.safetensors")}, "--out: cannot write"},
	} {
		_, _, err := runCLErr(append([]string{"extract", "--model", "/no/model.onnx"}, c.args...)...)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "model.onnx") {
			t.Errorf("%v: %v, want %q", c.args, err, c.want)
		}
	}
	_, _, err := runCLErr("extract", "--model", "/no/model.onnx", "--data", dir, "--out", out)
	if err == nil || !strings.Contains(err.Error(), "/no/model.onnx") {
		t.Errorf("missing model: %v", err)
	}
}

// TestExtractUnlabelled: image files given as arguments, and images:DIR,
// give unlabelled feature files (no classes, labels -1, ids the paths) that
// only ReadAny takes; the rows equal those of the same images extracted
// with labels.
func TestExtractUnlabelled(t *testing.T) {
	needORTLib(t)
	dir := imageFolder(t)
	labelled := filepath.Join(t.TempDir(), "l.safetensors")
	if _, stderr, err := runCLErr("extract", "--model", tinyViTPath, "--data", dir, "--out", labelled, "--threads", "1"); err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	ref, err := features.Read(labelled)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "u.safetensors")
	args := []string{"extract", "--model", tinyViTPath, "--out", out, "--threads", "1",
		filepath.Join(dir, "dog/c.png"), filepath.Join(dir, "cat/zz.png"), filepath.Join(dir, "cat/a.png")}
	stdout, stderr, err := runCLErr(args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	if !strings.Contains(stdout, ": 2 rows × 32 features, unlabelled (for cl predict), 1 skipped") {
		t.Fatalf("stdout %q", stdout)
	}
	if _, err := features.Read(out); !errors.Is(err, features.ErrUnlabelled) {
		t.Fatalf("Read of the unlabelled file: %v", err)
	}
	s, err := features.ReadAny(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Classes) != 0 || s.N != 2 || s.Labels[0] != features.Unlabelled || s.Labels[1] != features.Unlabelled ||
		s.IDs[0] != filepath.Join(dir, "dog/c.png") || s.IDs[1] != filepath.Join(dir, "cat/a.png") {
		t.Fatalf("unlabelled file: classes %v labels %v ids %v", s.Classes, s.Labels, s.IDs)
	}
	// Same rows as the labelled extraction (cat/a.png is row 0 there, dog/c.png row 2).
	for r, i := range []int{2, 0} {
		for j, v := range s.Row(r) {
			if v != ref.Row(i)[j] {
				t.Fatalf("row %d column %d: %v, labelled extraction %v", r, j, v, ref.Row(i)[j])
			}
		}
	}
	// images:DIR walks every image, sorted, ids relative to DIR.
	if _, stderr, err := runCLErr("extract", "--model", tinyViTPath, "--data", "images:"+dir, "--out", out, "--threads", "1"); err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	if s, err = features.ReadAny(out); err != nil || strings.Join(s.IDs, " ") != "cat/a.png cat/b.png dog/c.png dog/d.PNG dog/e.png" || len(s.Classes) != 0 {
		t.Fatalf("images:DIR: %v %v", s, err)
	}
	// Arguments that are not regular files are refused before the model loads.
	_, _, err = runCLErr("extract", "--model", "/no/model.onnx", "--out", out, filepath.Join(dir, "nope.png"))
	if err == nil || !strings.Contains(err.Error(), "argument 1: "+filepath.Join(dir, "nope.png")+" (missing)") {
		t.Fatalf("missing image argument: %v", err)
	}
}
