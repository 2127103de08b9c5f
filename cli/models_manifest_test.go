package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/cl-dev/cl/models"
)

// runCL2 runs the cl app with args and returns stdout, stderr and the error.
func runCL2(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := NewApp(&out, &errb).Run(append([]string{"cl"}, args...))
	return out.String(), errb.String(), err
}

// TestModelsImportPreprocess: --preprocess sets the imported model's
// manifest (JSON fields over the default, or a preset); a crop other than
// the checkpoint's image size is a usage error and writes nothing.
func TestModelsImportPreprocess(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "vit.onnx")
	stdout, _, err := runCL2(t, "models", "import", "--weights", vitTestdata+"vit.npz", "--out", out, "--no-verify",
		"--preprocess", `{"mean":[0.5,0.5,0.5],"std":[0.5,0.5,0.5]}`)
	if err != nil {
		t.Fatal(err)
	}
	man, err := models.ReadManifest(out)
	want := models.ForImageSize(32)
	want.Mean, want.Std = []float32{0.5, 0.5, 0.5}, []float32{0.5, 0.5, 0.5}
	if err != nil || man.Preprocess.JSON() != want.JSON() {
		t.Fatalf("manifest preprocess %s (%v), want %s", man.Preprocess.JSON(), err, want.JSON())
	}
	if !strings.Contains(stdout, "(x − mean) / std of x in [0,1] (preprocess: "+want.JSON()+")") {
		t.Errorf("summary does not state the preprocessing:\n%s", stdout)
	}
	bad := filepath.Join(dir, "bad.onnx")
	for _, c := range []struct{ pre, want string }{
		{"imagenet", "preprocess crop 224: the checkpoint's images are 32×32"},
		{`{"crop":30}`, "preprocess crop 30"},
		{`{"mean":[0.5]}`, "--preprocess"},
		{`{"means":[0.5]}`, `unknown field "means"`},
		{"inception", `preprocess "inception": use vit-in21k, imagenet or a JSON object`},
	} {
		_, _, err := runCL2(t, "models", "import", "--weights", vitTestdata+"vit.npz", "--out", bad, "--no-verify", "--preprocess", c.pre)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("--preprocess %s: %v, want an error containing %q", c.pre, err, c.want)
		}
		if _, err := os.Stat(bad); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("--preprocess %s: %s was written", c.pre, bad)
		}
	}
}

// TestModelsManifest: show, change in place (through a symbolic link),
// change to --out; the graph is untouched; refusals leave the file as it was.
func TestModelsManifest(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(dir, "vit.onnx")
	if _, _, err := runCL2(t, "models", "import", "--weights", vitTestdata+"vit.npz", "--out", model, "--no-verify"); err != nil {
		t.Fatal(err)
	}
	before, err := models.ReadModel(model)
	if err != nil {
		t.Fatal(err)
	}
	stdout, _, err := runCL2(t, "models", "manifest", model)
	if err != nil {
		t.Fatal(err)
	}
	var shown models.Manifest
	if err := json.Unmarshal([]byte(stdout), &shown); err != nil || shown.Preprocess.JSON() != models.ForImageSize(32).JSON() {
		t.Fatalf("shown manifest %q: %v", stdout, err)
	}

	link := filepath.Join(dir, "link.onnx")
	if err := os.Symlink(model, link); err != nil {
		t.Skip("no symbolic links:", err)
	}
	_, stderr, err := runCL2(t, "models", "manifest", link, "--preprocess", `{"mean":[0.5,0.5,0.5],"std":[0.5,0.5,0.5]}`, "--backbone", "AugReg ViT")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stderr, "features extracted with the old one do not match") {
		t.Errorf("no note about old features: %q", stderr)
	}
	if st, err := os.Lstat(link); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the link was replaced: %v", err)
	}
	after, err := models.ReadModel(model)
	if err != nil {
		t.Fatal(err)
	}
	man, _, _ := models.ManifestOf(after)
	if man.Backbone != "AugReg ViT" || len(man.Preprocess.Mean) != 3 || man.Preprocess.Mean[0] != 0.5 || man.Preprocess.Crop != 32 {
		t.Fatalf("changed manifest %+v", man)
	}
	if !proto.Equal(before.GetGraph(), after.GetGraph()) {
		t.Fatal("the graph changed")
	}

	// The same as importing with --preprocess, byte for byte.
	direct := filepath.Join(dir, "direct.onnx")
	if _, _, err := runCL2(t, "models", "import", "--weights", vitTestdata+"vit.npz", "--out", direct, "--no-verify",
		"--preprocess", `{"mean":[0.5,0.5,0.5],"std":[0.5,0.5,0.5]}`, "--backbone", "AugReg ViT"); err != nil {
		t.Fatal(err)
	}
	a, errA := os.ReadFile(model)
	b, errB := os.ReadFile(direct)
	if errA != nil || errB != nil || !bytes.Equal(a, b) {
		t.Fatalf("manifest-edited model differs from the model imported with --preprocess (%v, %v)", errA, errB)
	}

	// Preset to --out, and removing the normalisation again.
	out := filepath.Join(dir, "out.onnx")
	if _, _, err := runCL2(t, "models", "manifest", model, "--preprocess", `{"mean":null,"std":null,"interpolation":"bilinear"}`, "--out", out); err != nil {
		t.Fatal(err)
	}
	man, err = models.ReadManifest(out)
	if err != nil || man.Preprocess.Mean != nil || man.Preprocess.Interpolation != "bilinear" {
		t.Fatalf("--out manifest %+v, %v", man, err)
	}

	// Refusals leave the model byte for byte.
	orig, err := os.ReadFile(model)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{model, "--preprocess", "imagenet"}, "but the manifest says [N,3,224,224]"},
		{[]string{model, "--preprocess", `{"resize":8193}`}, "out of range"},
		{[]string{model, "--out", out}, "--out needs a change"},
		{[]string{filepath.Join(dir, "none.onnx")}, "no such file"},
		{[]string{}, "takes one M.onnx"},
	} {
		_, _, err := runCL2(t, append([]string{"models", "manifest"}, c.args...)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error containing %q", c.args, err, c.want)
		}
	}
	if now, err := os.ReadFile(model); err != nil || !bytes.Equal(now, orig) {
		t.Fatalf("a refused change altered %s", model)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("temporary file left: %s", e.Name())
		}
	}
}
