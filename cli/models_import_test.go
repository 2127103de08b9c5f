package cli

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cl-dev/cl/models"
	"github.com/cl-dev/cl/models/ort"
)

const vitTestdata = "../models/vit/testdata/"

func runImport(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := NewApp(&out, &errb).Run(append([]string{"cl", "models", "import"}, args...))
	return out.String(), errb.String(), err
}

func TestModelsImport(t *testing.T) {
	if _, err := ort.Init(""); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("ONNX Runtime is required under CI: %v", err)
		}
		t.Skipf("ONNX Runtime not available: %v", err)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "vit.onnx")
	stdout, stderr, err := runImport(t, "--weights", vitTestdata+"vit.npz", "--out", out, "--threads", "1")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout, "width 48, depth 3, heads 3, patch 8, MLP 128, image 32 (17 tokens)") {
		t.Errorf("summary:\n%s", stdout)
	}
	if !strings.Contains(stderr, "classifier head") {
		t.Errorf("no note about the ignored head: %q", stderr)
	}
	man, err := models.ReadManifest(out)
	if err != nil || man.Output != "features" || man.Preprocess.Crop != 32 {
		t.Errorf("manifest %+v, %v", man, err)
	}

	// A variant: extra inputs listed, per-image ones with N.
	vout := filepath.Join(dir, "prefix.onnx")
	stdout, _, err = runImport(t, "--weights", vitTestdata+"vit.safetensors", "--heads", "3", "--variant", "prefix",
		"--tokens", "4", "--layers", "0-1", "--out", vout)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout, "prefix float32 [N,2,2,4,48]") {
		t.Errorf("summary:\n%s", stdout)
	}
	m, err := models.ReadModel(vout)
	if err != nil || len(m.GetGraph().GetInput()) != 2 {
		t.Fatalf("prefix graph: %v", err)
	}
}

func TestModelsImportErrors(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "x.onnx")
	trunc := filepath.Join(dir, "trunc.safetensors")
	data, err := os.ReadFile(vitTestdata + "vit.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(trunc, data[:1000], 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args  []string
		usage bool
		want  string
	}{
		{[]string{"--out", out}, true, "--weights is required"},
		{[]string{"--weights", trunc, "--out", out, "--heads", "3"}, false, "truncated"},
		{[]string{"--weights", vitTestdata + "vit.npz", "--out", out, "--variant", "lora"}, true, `variant "lora" unknown`},
		{[]string{"--weights", vitTestdata + "vit.npz", "--out", out, "--variant", "prefix", "--layers", "0,7"}, false, "block 7 does not exist"},
		{[]string{"--weights", vitTestdata + "vit.npz", "--out", out, "--layers", "a"}, true, "not a block number"},
		{[]string{"--weights", vitTestdata + "vit.npz", "--out", out, "--quantize", "int4"}, false, "int4"},
		{[]string{"--weights", vitTestdata + "vit.npz", "--out", filepath.Join(dir, "no", "x.onnx")}, false, "--out"},
		{[]string{"--weights", vitTestdata + "missing.npz", "--out", out}, false, "missing.npz"},
	} {
		_, _, err := runImport(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: err = %v, want %q", c.args, err, c.want)
			continue
		}
		var ue UsageError
		if errors.As(err, &ue) != c.usage {
			t.Errorf("%v: usage error = %v, want %v", c.args, !c.usage, c.usage)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 { // only trunc.safetensors: no partial outputs
		t.Errorf("files left behind: %v", ents)
	}
}

func TestParseLayers(t *testing.T) {
	got, err := parseLayers("0-2, 5")
	if err != nil || len(got) != 4 || got[3] != 5 {
		t.Errorf("%v %v", got, err)
	}
	for _, bad := range []string{"", "x", "3-1", "1-"} {
		if _, err := parseLayers(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
