package models

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/cl-dev/cl/models/onnxpb"
)

// TensorInfo describes one graph value.
type TensorInfo struct {
	// Name is the tensor name in the graph.
	Name string `json:"name"`
	// Type is the element type ("float32", "uint8", …; "?" when unknown).
	Type string `json:"type"`
	// Shape has one entry per dim: a number, a symbolic name, or "?"; nil
	// when the rank is unknown.
	Shape []string `json:"shape"`
	// Op is the operator that produces the tensor (intermediate tensors only).
	Op string `json:"op,omitempty"`
}

// ShapeString renders the shape as "[batch,3,224,224]" or "[?]".
func (t TensorInfo) ShapeString() string {
	if t.Shape == nil {
		return "[?]"
	}
	return "[" + strings.Join(t.Shape, ",") + "]"
}

// Opset is one imported operator set.
type Opset struct {
	Domain  string `json:"domain"`
	Version int64  `json:"version"`
}

// ModelInfo is what `cl models inspect` reports about an .onnx file.
type ModelInfo struct {
	Path            string            `json:"path"`
	Size            int64             `json:"size_bytes"`
	SHA256          string            `json:"sha256"`
	IRVersion       int64             `json:"ir_version"`
	Producer        string            `json:"producer"`
	ProducerVersion string            `json:"producer_version,omitempty"`
	Opsets          []Opset           `json:"opsets"`
	Inputs          []TensorInfo      `json:"inputs"`
	Outputs         []TensorInfo      `json:"outputs"`
	Nodes           int               `json:"nodes"`
	Ops             map[string]int    `json:"ops"`
	Parameters      int64             `json:"parameters"`
	Metadata        map[string]string `json:"metadata,omitempty"`
	// Manifest is nil when the model has none; ManifestError says why a
	// stored manifest is unusable.
	Manifest      *Manifest `json:"manifest"`
	ManifestError string    `json:"manifest_error,omitempty"`
	// Tensors lists intermediate tensors (node outputs) in graph order, when
	// asked for; these are the names `cl models cut --tensor` accepts.
	Tensors []TensorInfo `json:"tensors,omitempty"`
}

// Inspect reads an .onnx file and describes it. With tensors it also lists
// every intermediate tensor with its (declared or inferred) type and shape.
func Inspect(path string, tensors bool) (*ModelInfo, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	m, err := ReadModel(path)
	if err != nil {
		return nil, err
	}
	sha, err := FileSHA256(path)
	if err != nil {
		return nil, err
	}
	g := m.GetGraph()
	ix := indexGraph(g)
	info := &ModelInfo{Path: path, Size: st.Size(), SHA256: sha, IRVersion: m.GetIrVersion(),
		Producer: m.GetProducerName(), ProducerVersion: m.GetProducerVersion(), Nodes: len(g.GetNode()),
		Ops: map[string]int{}}
	for _, o := range m.GetOpsetImport() {
		d := o.GetDomain()
		if d == "" {
			d = "ai.onnx"
		}
		info.Opsets = append(info.Opsets, Opset{Domain: d, Version: o.GetVersion()})
	}
	for _, v := range g.GetInput() {
		if ix.inputs[v.GetName()] {
			info.Inputs = append(info.Inputs, describe(ix, v.GetName()))
		}
	}
	for _, v := range g.GetOutput() {
		info.Outputs = append(info.Outputs, describe(ix, v.GetName()))
	}
	for _, n := range g.GetNode() {
		op := n.GetOpType()
		if d := n.GetDomain(); d != "" && d != "ai.onnx" {
			op = d + "." + op
		}
		info.Ops[op]++
		if tensors {
			for _, o := range n.GetOutput() {
				if o == "" {
					continue
				}
				t := describe(ix, o)
				t.Op = op
				info.Tensors = append(info.Tensors, t)
			}
		}
	}
	for _, t := range g.GetInitializer() {
		n := int64(1)
		for _, d := range t.GetDims() {
			n *= d
		}
		info.Parameters += n
	}
	for _, p := range m.GetMetadataProps() {
		if p.GetKey() == ManifestKey {
			continue
		}
		if info.Metadata == nil {
			info.Metadata = map[string]string{}
		}
		info.Metadata[p.GetKey()] = p.GetValue()
	}
	man, ok, err := ManifestOf(m)
	if err != nil {
		info.ManifestError = err.Error()
	} else if ok {
		info.Manifest = &man
	}
	return info, nil
}

func describe(ix *graphIndex, name string) TensorInfo {
	t := TensorInfo{Name: name, Type: DTypeName(ix.elemType(name, 0))}
	if dims := ix.shape(name); dims != nil || ix.values[name].GetType().GetTensorType().GetShape() != nil {
		t.Shape = []string{}
		for _, d := range dims {
			switch x := d.GetValue().(type) {
			case *onnxpb.TensorShapeProto_Dimension_DimValue:
				t.Shape = append(t.Shape, strconv.FormatInt(x.DimValue, 10))
			case *onnxpb.TensorShapeProto_Dimension_DimParam:
				t.Shape = append(t.Shape, x.DimParam)
			default:
				t.Shape = append(t.Shape, "?")
			}
		}
	}
	return t
}

// OpsString renders the operator histogram as "QLinearConv×52, …", most
// frequent first.
func (mi *ModelInfo) OpsString() string {
	type kv struct {
		k string
		v int
	}
	var s []kv
	for k, v := range mi.Ops {
		s = append(s, kv{k, v})
	}
	sort.Slice(s, func(i, j int) bool {
		if s[i].v != s[j].v {
			return s[i].v > s[j].v
		}
		return s[i].k < s[j].k
	})
	var parts []string
	for _, x := range s {
		parts = append(parts, fmt.Sprintf("%s×%d", x.k, x.v))
	}
	return strings.Join(parts, ", ")
}
