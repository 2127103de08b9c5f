package models

import (
	"os"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/cl-dev/cl/internal/testenv"
	"github.com/cl-dev/cl/models/onnxpb"
)

func TestInspectMobileNetTensors(t *testing.T) {
	path := needMobileNet(t)
	info, err := Inspect(path, true)
	if err != nil {
		t.Fatal(err)
	}
	if info.Manifest != nil || info.Nodes != 73 || info.Ops["QLinearConv"] != 52 || info.Ops["com.microsoft.QLinearAdd"] != 11 {
		t.Fatalf("%+v", info)
	}
	found := map[string]TensorInfo{}
	for _, ti := range info.Tensors {
		found[ti.Name] = ti
	}
	// Types the graph does not declare are inferred from the producers.
	want := map[string]string{"464_quantized": "uint8", "627": "float32", "465": "int64", "472_quantized": "uint8", "output": "float32"}
	for name, typ := range want {
		if found[name].Type != typ {
			t.Errorf("%s: type %q, want %q", name, found[name].Type, typ)
		}
	}
	if found["464_quantized"].Op != "com.microsoft.QLinearGlobalAveragePool" {
		t.Errorf("op %q", found["464_quantized"].Op)
	}
	if s := found["474_quantized"].ShapeString(); s != "[batch_size,32,112,112]" {
		t.Errorf("shape %s", s)
	}
}

// FuzzGraphTools feeds arbitrary bytes to the graph code that reads user
// models (signature checks, inspection, cut): errors are fine, panics are not.
func FuzzGraphTools(f *testing.F) {
	if data, err := os.ReadFile(tinyViT); err == nil {
		f.Add(data)
	}
	flat := &onnxpb.AttributeProto{Name: proto.String("axis"), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(1)}
	small, _ := proto.Marshal(withManifest(testenv.OneNodeGraph("Flatten", onnxpb.TensorProto_FLOAT, []int64{-1, 3, 4, 4}, onnxpb.TensorProto_FLOAT, []int64{-1, 48}, flat), 4))
	f.Add(small)
	f.Fuzz(func(t *testing.T, data []byte) {
		m := &onnxpb.ModelProto{}
		if proto.Unmarshal(data, m) != nil || m.GetGraph() == nil {
			return
		}
		man := Manifest{Preprocess: Preprocess{Interpolation: "bilinear", Crop: 4}}
		CheckSignature("fuzz", m.GetGraph(), &man)
		ix := indexGraph(m.GetGraph())
		for _, n := range m.GetGraph().GetNode() {
			for _, o := range n.GetOutput() {
				describe(ix, o)
			}
		}
		var tensor string
		if nodes := m.GetGraph().GetNode(); len(nodes) > 0 && len(nodes[len(nodes)-1].GetOutput()) > 0 {
			tensor = nodes[len(nodes)-1].GetOutput()[0]
		}
		for _, pool := range []string{"", "gap"} {
			c := proto.Clone(m).(*onnxpb.ModelProto)
			Cut(c, CutOptions{Tensor: tensor, Pool: pool, Preprocess: man.Preprocess})
		}
	})
}

func withManifest(m *onnxpb.ModelProto, crop int) *onnxpb.ModelProto {
	SetManifest(m, Manifest{Input: "x", Output: "y", Preprocess: Preprocess{Resize: crop, Interpolation: "bilinear", Crop: crop}})
	return m
}
