package cli

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cl-dev/cl/models"
	"github.com/cl-dev/cl/models/ort"
)

const tinyViTWeights = "../models/vit/testdata/vit.safetensors"

// stripeFolder writes an ImageFolder of 32×32 PNGs: class "h" horizontal,
// "v" vertical stripes, n images each, random phase and noise.
func stripeFolder(t *testing.T, n int) string {
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(3, 4))
	for _, cls := range []string{"h", "v"} {
		os.MkdirAll(filepath.Join(dir, cls), 0o755)
		for i := 0; i < n; i++ {
			img := image.NewGray(image.Rect(0, 0, 32, 32))
			ph := r.IntN(8)
			for y := 0; y < 32; y++ {
				for x := 0; x < 32; x++ {
					c := y
					if cls == "v" {
						c = x
					}
					v := 40 + r.IntN(30)
					if (c+ph)/4%2 == 0 {
						v = 190 + r.IntN(30)
					}
					img.SetGray(x, y, color.Gray{uint8(v)})
				}
			}
			var b bytes.Buffer
			png.Encode(&b, img)
			if err := os.WriteFile(filepath.Join(dir, cls, string(rune('a'+i))+".png"), b.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

func TestTuneCommand(t *testing.T) {
	needORTLib(t)
	data := stripeFolder(t, 8)
	out := filepath.Join(t.TempDir(), "adapted.onnx")
	params := filepath.Join(t.TempDir(), "p.safetensors")
	stdout, stderr, err := runCLErr("tune", "--method", "aper-adapter", "--weights", tinyViTWeights, "--heads", "3", "--data", data,
		"--inc", "2", "--epochs", "2", "--batch", "4", "--held-out", "0.25", "--out", out, "--params", params, "--threads", "1")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	if !strings.Contains(stdout, "wrote "+out) || !strings.Contains(stderr, "epoch 2/2") {
		t.Fatalf("stdout %q\nstderr %q", stdout, stderr)
	}
	m, err := models.ReadModel(out)
	if err != nil {
		t.Fatal(err)
	}
	rec := ""
	for _, p := range m.MetadataProps {
		if p.GetKey() == "cl.tune" {
			rec = p.GetValue()
		}
	}
	if !strings.Contains(rec, `"method":"aper-adapter"`) || !strings.Contains(rec, "parent_weights_sha256") {
		t.Fatalf("cl.tune metadata %q", rec)
	}
	bb, err := ort.Open(out, ort.Options{Threads: 1})
	if err != nil {
		t.Fatalf("the adapted backbone does not open as a backbone: %v", err)
	}
	defer bb.Close()
	if bb.Dim() != 48 || bb.InputSize() != 32 {
		t.Fatalf("dim %d size %d", bb.Dim(), bb.InputSize())
	}
	if _, err := os.Stat(params); err != nil {
		t.Fatal(err)
	}
	// The checkpoint is kept; a second run without --resume refuses to
	// overwrite it, and --resume finds the run complete.
	if _, _, err := runCLErr("tune", "--method", "aper-adapter", "--weights", tinyViTWeights, "--heads", "3", "--data", data,
		"--inc", "2", "--epochs", "2", "--batch", "4", "--out", out); err == nil || !strings.Contains(err.Error(), "--resume") {
		t.Fatalf("existing checkpoint: %v", err)
	}
	// Resuming with another method is refused with the reason.
	if _, _, err := runCLErr("tune", "--method", "aper-ssf", "--weights", tinyViTWeights, "--heads", "3", "--data", data, "--resume",
		"--inc", "2", "--epochs", "2", "--batch", "4", "--held-out", "0.25", "--out", out, "--threads", "1"); err == nil || !strings.Contains(err.Error(), "method") {
		t.Fatalf("resume across methods: %v", err)
	}
}

func TestTuneUsageErrors(t *testing.T) {
	data := stripeFolder(t, 2)
	out := filepath.Join(t.TempDir(), "a.onnx")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--method", "l3p", "--weights", tinyViTWeights, "--heads", "3", "--data", data, "--out", out}, "l3p"},
		{[]string{"--method", "aper-ssf", "--weights", tinyViTWeights, "--heads", "3", "--data", data, "--out", out, "--recipe", "fast"}, "recipe"},
		{[]string{"--method", "aper-ssf", "--weights", tinyViTWeights, "--heads", "3", "--data", data, "--out", out, "--held-out", "1"}, "held-out"},
		{[]string{"--method", "aper-ssf", "--weights", tinyViTWeights, "--heads", "3", "--data", data, "--out", out, "--device", "gpu"}, "device"},
		{[]string{"--method", "aper-ssf", "--weights", tinyViTWeights, "--out", out}, "data"},
	} {
		_, _, code := run(append([]string{"tune"}, c.args...)...)
		_, stderr, err := runCLErr(append([]string{"tune"}, c.args...)...)
		if code != 2 || err == nil || !strings.Contains(err.Error()+stderr, c.want) {
			t.Errorf("%v: exit %d, %v %s; want exit 2 naming %q", c.args, code, err, stderr, c.want)
		}
	}
	// Not a usage error: a checkpoint file that does not exist.
	if _, _, err := runCLErr("tune", "--method", "aper-ssf", "--weights", "nope.safetensors", "--data", data, "--out", out); err == nil || !strings.Contains(err.Error(), "nope.safetensors") {
		t.Errorf("missing weights: %v", err)
	}
}

func TestBenchFromImages(t *testing.T) {
	needORTLib(t)
	train, test := stripeFolder(t, 8), stripeFolder(t, 4)
	cache := t.TempDir()
	args := []string{"bench", "--weights", tinyViTWeights, "--heads", "3", "--data", train, "--test-data", test,
		"--inc", "2", "--method", "simplecil,aper-adapter,ranpac-phase1", "--set", "epochs=2", "--set", "batch=4",
		"--set", "M=64", "--set", "aper-adapter.augment=none", "--threads", "1", "--cache", cache, "--json",
		"--out", filepath.Join(t.TempDir(), "new", "dir")}
	stdout, stderr, err := runCLErr(args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	for _, m := range []string{`"method": "simplecil"`, `"method": "aper-adapter"`, `"method": "ranpac-phase1"`} {
		if !strings.Contains(stdout, m) {
			t.Fatalf("no %s in\n%s", m, stdout)
		}
	}
	// A rerun takes the frozen features and the adaptations from the cache.
	_, stderr2, err := runCLErr(args...)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stderr2, "frozen features from the cache") || !strings.Contains(stderr2, "adaptation of stage 1 from the cache") {
		t.Fatalf("second run did not use the cache:\n%s", stderr2)
	}
	// An option no selected method has is a usage error.
	if _, _, code := run("bench", "--weights", tinyViTWeights, "--heads", "3", "--data", train, "--test-data", test,
		"--inc", "2", "--method", "simplecil", "--set", "epochs=2"); code != 2 {
		t.Fatalf("--set epochs for simplecil: exit %d", code)
	}
}
