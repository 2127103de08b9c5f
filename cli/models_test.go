package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/cl-dev/cl/internal/testenv/orttest"
	"github.com/cl-dev/cl/models"
	"github.com/cl-dev/cl/models/ort"
)

const (
	tinyViTPath   = "../testdata/tinyvit/tinyvit.onnx"
	mobileNetPath = "../testdata/mobilenetv2/mobilenetv2-12-int8.onnx" // shipped; same bytes as ../shared/data
)

// runCL runs the cl app with args and returns stdout and the error.
func runCL(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := NewApp(&out, &errb).Run(append([]string{"cl"}, args...))
	return out.String(), err
}

// needORTLib is orttest.Need: ONNX Runtime or skip (fail under CI=true).
func needORTLib(t *testing.T) { t.Helper(); orttest.Need(t) }

func needMobileNetV2(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(mobileNetPath); err != nil {
		t.Fatalf("the shipped MobileNetV2 is missing (it is part of the repository): %v", err)
	}
	return mobileNetPath
}

func TestModelsInspectTable(t *testing.T) {
	out, err := runCL(t, "models", "inspect", tinyViTPath)
	if err != nil {
		t.Fatal(err)
	}
	sha, _ := models.FileSHA256(tinyViTPath)
	for _, want := range []string{
		"sha256      " + sha,
		"input       input     float32 [batch,3,32,32]",
		"output      features  float32 [batch,32]",
		"opsets      ai.onnx 17",
		`manifest    input "input", output "features"`,
		`preprocess  {"resize":36,"interpolation":"bicubic","crop":32}`,
		"parameters  23904",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, out)
		}
	}
}

func TestModelsInspectJSONAndTensors(t *testing.T) {
	// Flags after the positional argument work too.
	out, err := runCL(t, "models", "inspect", tinyViTPath, "--json", "--tensors")
	if err != nil {
		t.Fatal(err)
	}
	var info models.ModelInfo
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	st, _ := os.Stat(tinyViTPath)
	if info.Size != st.Size() || info.Manifest == nil || info.Manifest.Preprocess.Crop != 32 || len(info.Inputs) != 1 ||
		info.Inputs[0].Type != "float32" || strings.Join(info.Outputs[0].Shape, ",") != "batch,32" || len(info.Tensors) < 100 {
		t.Fatalf("%+v", info)
	}
	if info.Opsets[0] != (models.Opset{Domain: "ai.onnx", Version: 17}) {
		t.Fatalf("opsets %+v", info.Opsets)
	}
}

func TestModelsInspectNoManifestAndErrors(t *testing.T) {
	p := needMobileNetV2(t)
	out, err := runCL(t, "models", "inspect", p)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"manifest    none", "float32 [batch_size,3,224,224]", "output      output  float32 [batch_size,1000]",
		"83530ad811bc31d2b60a5599a21265a5057608c9b044b4ee758cc22f2309f54f", "size        3655640 bytes", "ai.onnx 12, com.microsoft 1"} {
		if !strings.Contains(out, want) {
			t.Errorf("lacks %q:\n%s", want, out)
		}
	}
	if _, err := runCL(t, "models", "inspect", "nope.onnx"); err == nil || !strings.Contains(err.Error(), "nope.onnx") {
		t.Errorf("missing file: %v", err)
	}
	var ue UsageError
	if _, err := runCL(t, "models", "inspect"); !errors.As(err, &ue) {
		t.Errorf("no argument: %v", err)
	}
	if _, err := runCL(t, "models", "inspect", p, "--bogus"); !errors.As(err, &ue) {
		t.Errorf("unknown flag: %v", err)
	}
}

func TestModelsCutMobileNet(t *testing.T) {
	p := needMobileNetV2(t)
	needORTLib(t)
	dst := filepath.Join(t.TempDir(), "mnv2.onnx")
	out, err := runCL(t, "models", "cut", p, "--tensor", "464_quantized", "--preprocess", "imagenet", "--out", dst, "--backbone", "MobileNetV2")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "features float32 [N,1280] from 464_quantized (uint8, dequantized with 464_scale/464_zero_point)") {
		t.Fatalf("output: %s", out)
	}
	b, err := ort.Open(dst, ort.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	want, _ := models.PreprocessPreset("imagenet")
	if b.Dim() != 1280 || b.Manifest().Preprocess.JSON() != want.JSON() || b.Manifest().Backbone != "MobileNetV2" {
		t.Fatalf("dim %d manifest %+v", b.Dim(), b.Manifest())
	}
	info, err := models.Inspect(dst, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Outputs) != 1 || info.Outputs[0].ShapeString() != "[batch_size,1280]" {
		t.Fatalf("outputs %+v", info.Outputs)
	}
}

func TestModelsCutErrors(t *testing.T) {
	dir := t.TempDir()
	dst := filepath.Join(dir, "out.onnx")
	var ue UsageError
	cases := []struct {
		args  []string
		usage bool
		want  string
	}{
		{[]string{tinyViTPath, "--out", dst}, true, "--tensor is required"},
		{[]string{tinyViTPath, "--tensor", "features"}, true, "--out is required"},
		{[]string{tinyViTPath, "--tensor", "features", "--out", dst, "--preprocess", "vit-21k"}, true, "--preprocess"},
		{[]string{tinyViTPath, "--tensor", "features", "--out", dst, "--device", "tpu"}, true, "--device"},
		{[]string{tinyViTPath, "--tensor", "features", "--out", filepath.Join(dir, "no", "such", "dir", "x.onnx")}, false, "--out: cannot write"},
		{[]string{tinyViTPath, "--tensor", "featurez", "--out", dst}, false, `tensor "featurez" is not in the graph; close names: features`},
		{[]string{"missing.onnx", "--tensor", "x", "--out", dst}, false, "missing.onnx"},
	}
	for _, c := range cases {
		_, err := runCL(t, append([]string{"models", "cut"}, c.args...)...)
		if err == nil || !strings.Contains(err.Error(), c.want) || errors.As(err, &ue) != c.usage {
			t.Errorf("%v: got %v (usage error %v), want %q (usage %v)", c.args, err, errors.As(err, &ue), c.want, c.usage)
		}
	}
	if _, err := os.Stat(dst); !os.IsNotExist(err) {
		t.Fatalf("a failed cut left %s behind", dst)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Fatalf("temporary files left: %v", entries)
	}
}

func TestModelsCutCUDAFailsClearly(t *testing.T) {
	needORTLib(t)
	dst := filepath.Join(t.TempDir(), "out.onnx")
	_, err := runCL(t, "models", "cut", tinyViTPath, "--tensor", "features", "--out", dst, "--device", "cuda:0")
	if err == nil {
		t.Skip("CUDA works here")
	}
	if !strings.Contains(err.Error(), "the CUDA provider could not be loaded") || !strings.Contains(err.Error(), "--device cpu") {
		t.Fatalf("unclear: %v", err)
	}
	if _, err := os.Stat(dst); !os.IsNotExist(err) {
		t.Fatal("output written despite the failure")
	}
}

// A model whose tensor is already the output keeps its manifest when no
// --preprocess is given.
func TestModelsCutKeepsManifest(t *testing.T) {
	needORTLib(t)
	dst := filepath.Join(t.TempDir(), "tiny.onnx")
	if _, err := runCL(t, "models", "cut", "--tensor", "features", "--out", dst, tinyViTPath); err != nil {
		t.Fatal(err)
	}
	man, err := models.ReadManifest(dst)
	if err != nil {
		t.Fatal(err)
	}
	if man.Preprocess.Resize != 36 || man.Output != "features" || !strings.HasPrefix(man.Backbone, "tiny ViT") {
		t.Fatalf("%+v", man)
	}
}

// ortFlags check --device and --threads when urfave parses them (commands
// without SkipFlagParsing), as usage errors.
func TestORTFlags(t *testing.T) {
	var got ort.Options
	app := &cli.App{Name: "t", Commands: []*cli.Command{{Name: "x", Flags: ortFlags(),
		Action: func(c *cli.Context) error { got = backboneOptions(c); return nil }}}}
	if err := app.Run([]string{"t", "x", "--device", "cuda:2", "--threads", "3", "--ort-lib", "/l.so"}); err != nil {
		t.Fatal(err)
	}
	if got != (ort.Options{ORTLib: "/l.so", Device: "cuda:2", Threads: 3}) {
		t.Fatalf("%+v", got)
	}
	if err := app.Run([]string{"t", "x"}); err != nil || got.Device != "cpu" || got.Threads != 0 {
		t.Fatalf("defaults: %+v %v", got, err)
	}
	var ue UsageError
	for _, args := range [][]string{{"--device", "cuda:x"}, {"--device", "tpu"}, {"--threads", "-2"}} {
		if err := app.Run(append([]string{"t", "x"}, args...)); !errors.As(err, &ue) {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
}
