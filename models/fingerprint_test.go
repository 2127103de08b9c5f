package models

import (
	"path/filepath"
	"runtime"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/cl-dev/cl/models/onnxpb"
)

// cutMobileNet reads the shipped MobileNetV2 and cuts it at its pooled
// 1280-d feature with the given manifest description.
func cutMobileNet(t *testing.T, backbone string, pre Preprocess) *onnxpb.ModelProto {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	m, err := ReadModel(filepath.Join(filepath.Dir(file), "..", "testdata", "mobilenetv2", "mobilenetv2-12-int8.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Cut(m, CutOptions{Tensor: "464_quantized", Preprocess: pre, Backbone: backbone}); err != nil {
		t.Fatal(err)
	}
	return m
}

func manifest(t *testing.T, m *onnxpb.ModelProto) Manifest {
	t.Helper()
	man, ok, err := ManifestOf(m)
	if err != nil || !ok {
		t.Fatalf("manifest: %v %v", ok, err)
	}
	return man
}

// TestFingerprintIgnoresDescription: two cuts of one graph that differ in
// their descriptive metadata (the manifest's backbone text, producer, doc
// strings, graph name) have one fingerprint, although their files differ;
// the fingerprint survives a write and read; a changed weight, node,
// output name or preprocessing changes it.
func TestFingerprintIgnoresDescription(t *testing.T) {
	pre, err := PreprocessPreset("imagenet")
	if err != nil {
		t.Fatal(err)
	}
	a := cutMobileNet(t, "MobileNetV2 int8", pre)
	b := cutMobileNet(t, "my favourite backbone", pre)
	b.ProducerName = proto.String("someone else")
	b.DocString = proto.String("described at length")
	b.ModelVersion = proto.Int64(7)
	b.Graph.Name = proto.String("renamed")
	b.Graph.Node[0].DocString = proto.String("a node comment")
	SetMetadata(b, "author", "me")
	ba, _ := proto.Marshal(a)
	bb, _ := proto.Marshal(b)
	if string(ba) == string(bb) {
		t.Fatal("the two cuts are byte-identical: the test shows nothing")
	}
	fa := Fingerprint(a, manifest(t, a))
	if len(fa) != 64 {
		t.Fatalf("fingerprint %q is not hex SHA-256", fa)
	}
	if fb := Fingerprint(b, manifest(t, b)); fb != fa {
		t.Fatalf("descriptive metadata changed the fingerprint: %s vs %s", fa, fb)
	}
	if Fingerprint(a, manifest(t, a)) != fa {
		t.Fatal("fingerprint not deterministic")
	}
	path := filepath.Join(t.TempDir(), "cut.onnx")
	if err := WriteModel(path, a); err != nil {
		t.Fatal(err)
	}
	back, err := ReadModel(path)
	if err != nil {
		t.Fatal(err)
	}
	if f := Fingerprint(back, manifest(t, back)); f != fa {
		t.Fatalf("after a write and read: %s vs %s", f, fa)
	}

	changes := map[string]func(m *onnxpb.ModelProto, man *Manifest){
		"one weight byte": func(m *onnxpb.ModelProto, man *Manifest) {
			for _, init := range m.Graph.Initializer {
				if len(init.RawData) > 0 {
					init.RawData[0] ^= 1
					return
				}
			}
			t.Fatal("no raw initializer")
		},
		"a node's op": func(m *onnxpb.ModelProto, man *Manifest) {
			n := m.Graph.Node[len(m.Graph.Node)-1]
			n.OpType = proto.String(n.GetOpType() + "X")
		},
		"output name":   func(m *onnxpb.ModelProto, man *Manifest) { man.Output = "other" },
		"crop":          func(m *onnxpb.ModelProto, man *Manifest) { man.Preprocess.Crop = 192 },
		"mean":          func(m *onnxpb.ModelProto, man *Manifest) { man.Preprocess.Mean[0] = 0.5 },
		"interpolation": func(m *onnxpb.ModelProto, man *Manifest) { man.Preprocess.Interpolation = "bicubic" },
	}
	for name, change := range changes {
		m := cutMobileNet(t, "MobileNetV2 int8", pre)
		man := manifest(t, m)
		man.Preprocess.Mean = append([]float32(nil), man.Preprocess.Mean...)
		change(m, &man)
		if f := Fingerprint(m, man); f == fa {
			t.Errorf("%s: fingerprint unchanged", name)
		}
	}
	// Fingerprint does not modify the model.
	before, _ := proto.Marshal(b)
	Fingerprint(b, manifest(t, b))
	if after, _ := proto.Marshal(b); string(after) != string(before) {
		t.Error("Fingerprint modified the model")
	}
}
