//go:build cgo

package grad

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/cl-dev/cl/internal/safetensors"
	"github.com/cl-dev/cl/models/onnxpb"
	"github.com/cl-dev/cl/models/ort"
	"github.com/cl-dev/cl/models/vit"
)

// Goldens made by testdata/grad/make_goldens.py (torch 1.13 autograd in
// float64).
const (
	opsGolden   = "../../testdata/grad/ops.safetensors"
	vitGolden   = "../../testdata/grad/vit.safetensors"
	vitWeights  = "../../models/vit/testdata/vit.safetensors"
	opsTolF64   = 1e-9
	opsTolF32   = 1e-5
	vitTol      = 1e-4
	goldenNotes = "regenerate with /usr/bin/python3 testdata/grad/make_goldens.py"
)

func readGolden(t *testing.T, path string) *safetensors.File {
	t.Helper()
	f, err := safetensors.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (%s)", err, goldenNotes)
	}
	return f
}

func goldenTensor(t *testing.T, f *safetensors.File, name string) safetensors.Tensor {
	t.Helper()
	x, ok := f.Tensors[name]
	if !ok {
		t.Fatalf("golden has no tensor %q (%s)", name, goldenNotes)
	}
	return x
}

func goldenFloats(t *testing.T, f *safetensors.File, name string) ([]int64, []float64) {
	t.Helper()
	x := goldenTensor(t, f, name)
	switch x.DType {
	case safetensors.F64:
		return x.Shape, x.Float64s()
	case safetensors.F32:
		v := x.Float32s()
		out := make([]float64, len(v))
		for i, f := range v {
			out[i] = float64(f)
		}
		return x.Shape, out
	}
	t.Fatalf("golden %q has dtype %s", name, x.DType)
	return nil, nil
}

// attrsFromJSON turns {"axis": 1, "alpha": 0.5, "perm": [1, 0]} into
// attributes (numbers with a point or exponent are floats).
func attrsFromJSON(t *testing.T, raw json.RawMessage) []attr {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatal(err)
	}
	var out []attr
	for k, v := range m {
		switch x := v.(type) {
		case json.Number:
			if strings.ContainsAny(x.String(), ".eE") {
				f, _ := x.Float64()
				out = append(out, attrFloat(k, float32(f)))
			} else {
				i, _ := x.Int64()
				out = append(out, attrInt(k, i))
			}
		case []any:
			var v []int64
			for _, e := range x {
				i, _ := e.(json.Number).Int64()
				v = append(v, i)
			}
			out = append(out, attrInts(k, v...))
		default:
			t.Fatalf("attribute %s: %v", k, v)
		}
	}
	return out
}

type opCase struct {
	Name   string          `json:"name"`
	Op     string          `json:"op"`
	Attrs  json.RawMessage `json:"attrs"`
	DType  string          `json:"dtype"`
	Inputs []struct {
		Name  string `json:"name"`
		Kind  string `json:"kind"`
		Train bool   `json:"train"`
	} `json:"inputs"`
	Outputs int `json:"outputs"`
}

// TestOpsAgainstTorch checks each rule's gradients against torch autograd,
// broadcasting cases included.
func TestOpsAgainstTorch(t *testing.T) {
	needORT(t)
	f := readGolden(t, opsGolden)
	var cases []opCase
	if err := json.Unmarshal([]byte(f.Metadata["cases"]), &cases); err != nil {
		t.Fatalf("%s: cases: %v", opsGolden, err)
	}
	if len(cases) < 30 {
		t.Fatalf("%s holds %d cases", opsGolden, len(cases))
	}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			dt, tol := tDouble, opsTolF64
			if c.DType == "float" {
				dt, tol = tFloat, opsTolF32
			}
			g := newTGraph(dt)
			var names, train []string
			var feeds []ort.Tensor
			for _, in := range c.Inputs {
				key := c.Name + "/" + in.Name
				names = append(names, in.Name)
				switch in.Kind {
				case "int":
					x := goldenTensor(t, f, key)
					g.initI64(in.Name, append([]int64{}, x.Shape...), x.Int64s()...)
					names = names[:len(names)-1]
				case "bool":
					x := goldenTensor(t, f, key)
					g.g().Initializer = append(g.g().Initializer, &onnxpb.TensorProto{Name: proto.String(in.Name),
						Dims: x.Shape, DataType: proto.Int32(tBool), RawData: x.Data})
					names = names[:len(names)-1]
				default:
					shape, v := goldenFloats(t, f, key)
					g.input(in.Name, dt, shape...)
					feeds = append(feeds, tensorOf(dt, shape, v))
					if in.Train {
						train = append(train, in.Name)
					}
				}
			}
			var outs, terms []string
			for k := 0; k < c.Outputs; k++ {
				outs = append(outs, fmt.Sprintf("y%d", k))
			}
			var in []string
			for _, x := range c.Inputs {
				in = append(in, x.Name)
			}
			g.node(c.Op, in, outs, attrsFromJSON(t, c.Attrs)...)
			g.initI64("flat", nil, -1)
			for k, o := range outs {
				shape, r := goldenFloats(t, f, fmt.Sprintf("%s/R%d", c.Name, k))
				rn := "R_" + o
				g.initF(rn, dt, shape, r)
				g.node("Mul", []string{o, rn}, []string{"w_" + o})
				g.node("Reshape", []string{"w_" + o, "flat"}, []string{"wf_" + o})
				g.node("ReduceSum", []string{"wf_" + o}, []string{"t_" + o})
				terms = append(terms, "t_"+o)
			}
			g.node("Sum", terms, []string{"loss"})
			g.output("loss")
			gm, err := Build(g.m, Spec{Trainable: train, Loss: "loss"})
			if err != nil {
				t.Fatal(err)
			}
			var gouts []string
			for _, tr := range train {
				gouts = append(gouts, GradName(tr))
			}
			res := run(t, session(t, gm, names, gouts, dt == tDouble), feeds)
			for k, tr := range train {
				_, want := goldenFloats(t, f, c.Name+"/grad/"+tr)
				got := floats(res[k])
				if len(got) != len(want) {
					t.Fatalf("grad/%s: %d values, torch has %d", tr, len(got), len(want))
				}
				if e := relErr(got, want); e > tol {
					t.Errorf("grad/%s: relative error %.3g > %.3g vs torch\n got  %v\n want %v", tr, e, tol, trim(got), trim(want))
				} else {
					t.Logf("grad/%s: relative error %.2g", tr, e)
				}
			}
		})
	}
}

type vitCase struct {
	Name      string   `json:"name"`
	Variant   string   `json:"variant"`
	Head      string   `json:"head"`
	Mask      string   `json:"mask"`
	Range     [2]int   `json:"range"`
	Trainable []string `json:"trainable"`
	Term      float64  `json:"term"`
	Features  string   `json:"features"`
}

type vitConfig struct {
	Tokens       int     `json:"tokens"`
	PrefixLayers []int   `json:"prefix_layers"`
	Bottleneck   int     `json:"bottleneck"`
	Scale        float32 `json:"scale"`
	Heads        int     `json:"heads"`
	Classes      int     `json:"classes"`
}

// TestViTAgainstTorch differentiates whole tiny ViTs (models/vit graphs of
// the timm-structured reference weights) in every variant, with a linear or
// cosine head and a masked cross-entropy, and compares the loss, the logits
// and every gradient with torch autograd (float64) within 1e-4 relative.
func TestViTAgainstTorch(t *testing.T) {
	needORT(t)
	f := readGolden(t, vitGolden)
	var cases []vitCase
	var cfg vitConfig
	if err := json.Unmarshal([]byte(f.Metadata["cases"]), &cases); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(f.Metadata["config"]), &cfg); err != nil {
		t.Fatal(err)
	}
	w, err := vit.Load(vitWeights, cfg.Heads)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, c := range cases {
		for _, att := range []string{vit.AttentionONNX, vit.AttentionMHA} {
			seen[c.Variant] = true
			t.Run(c.Name+"/"+att, func(t *testing.T) { checkViT(t, f, w, c, cfg, att) })
		}
	}
	for _, v := range vit.Variants {
		if !seen[string(v)] {
			t.Errorf("no golden for variant %s", v)
		}
	}
}

func checkViT(t *testing.T, f *safetensors.File, w *vit.Weights, c vitCase, cfg vitConfig, attention string) {
	opt := vit.Options{Variant: vit.Variant(c.Variant), Attention: attention}
	switch opt.Variant {
	case vit.Prompt, vit.VPTShallow, vit.VPTDeep:
		opt.Tokens = cfg.Tokens
	case vit.Prefix:
		opt.Tokens, opt.Layers = cfg.Tokens, cfg.PrefixLayers
	case vit.Adapter:
		opt.Bottleneck, opt.Scale = cfg.Bottleneck, cfg.Scale
	}
	fwd, err := vit.Build(w, opt)
	if err != nil {
		t.Fatal(err)
	}
	initVals := map[string]*onnxpb.TensorProto{}
	for _, x := range fwd.Graph.Initializer {
		initVals[x.GetName()] = x
	}
	obj := NewObjective(fwd)
	if c.Term != 0 {
		sq := obj.Op("ReduceSum", []attr{attrInt("keepdims", 0)}, obj.Op("Mul", nil, "prompt", "prompt"))
		obj.AddTerm(Term{Tensor: sq, Weight: c.Term})
	}
	spec := ObjectiveSpec{Features: c.Features, Classes: cfg.Classes, Head: HeadKind(c.Head), Mask: MaskKind(c.Mask), Range: c.Range}
	if err := obj.Classifier(spec); err != nil {
		t.Fatal(err)
	}
	gm, err := Build(obj.Model(), Spec{Trainable: c.Trainable, Loss: LossName, Keep: []string{LogitsName}})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range gm.Graph.Node {
		if n.GetDomain() != "" {
			t.Fatalf("node %s in domain %s", n.GetName(), n.GetDomain())
		}
	}
	// Feeds: the image, the labels, the mask and every graph input.
	names := []string{vit.InputName, LabelsName}
	shape, img := goldenFloats(t, f, "input")
	lab := goldenTensor(t, f, "labels")
	feeds := []ort.Tensor{tensorOf(tFloat, shape, img), {Shape: lab.Shape, I64: lab.Int64s()}}
	if c.Mask == string(MaskInput) {
		s, v := goldenFloats(t, f, c.Name+"/class_mask")
		names = append(names, ClassMaskName)
		feeds = append(feeds, tensorOf(tFloat, s, v))
	}
	for _, tr := range c.Trainable {
		names = append(names, tr)
		if x, ok := initVals[tr]; ok {
			v, _ := tensorFloats(x)
			feeds = append(feeds, tensorOf(tFloat, x.GetDims(), v))
			continue
		}
		s, v := goldenFloats(t, f, c.Name+"/"+tr)
		feeds = append(feeds, tensorOf(tFloat, s, v))
	}
	outs := []string{LossName, LogitsName}
	for _, tr := range c.Trainable {
		outs = append(outs, GradName(tr))
	}
	res := run(t, session(t, gm, names, outs, false), feeds)
	check := func(what string, got []float64, key string) {
		t.Helper()
		_, want := goldenFloats(t, f, key)
		if len(got) != len(want) {
			t.Fatalf("%s: %d values, torch has %d", what, len(got), len(want))
		}
		// −inf (masked logits) must match exactly; compare the rest.
		var g2, w2 []float64
		for i := range want {
			if math.IsInf(want[i], -1) || math.IsInf(got[i], -1) {
				if got[i] != want[i] {
					t.Fatalf("%s[%d] = %v, torch %v", what, i, got[i], want[i])
				}
				continue
			}
			g2, w2 = append(g2, got[i]), append(w2, want[i])
		}
		e := relErr(g2, w2)
		if e > vitTol || math.IsNaN(e) {
			t.Errorf("%s: relative error %.3g > %.3g vs torch\n got  %v\n want %v", what, e, vitTol, trim(g2), trim(w2))
		} else {
			t.Logf("%s: relative error %.2g", what, e)
		}
	}
	check("loss", floats(res[0]), c.Name+"/loss")
	check("logits", floats(res[1]), c.Name+"/logits")
	for k, tr := range c.Trainable {
		check(GradName(tr), floats(res[2+k]), c.Name+"/grad/"+tr)
	}
}

// TestDynamicBatch runs one adapter training graph at batch 3 and at batch
// 1 on each image: the batch gradient must be the mean of the per-image
// gradients (the loss is a batch mean), so the symbolic batch is handled.
func TestDynamicBatch(t *testing.T) {
	needORT(t)
	f := readGolden(t, vitGolden)
	var cfg vitConfig
	if err := json.Unmarshal([]byte(f.Metadata["config"]), &cfg); err != nil {
		t.Fatal(err)
	}
	w, err := vit.Load(vitWeights, cfg.Heads)
	if err != nil {
		t.Fatal(err)
	}
	fwd, err := vit.Build(w, vit.Options{Variant: vit.Adapter, Bottleneck: cfg.Bottleneck, Scale: cfg.Scale})
	if err != nil {
		t.Fatal(err)
	}
	obj := NewObjective(fwd)
	if err := obj.Classifier(ObjectiveSpec{Features: vit.OutputName, Classes: cfg.Classes, Head: HeadCosine, Mask: MaskRange, Range: [2]int{0, 4}}); err != nil {
		t.Fatal(err)
	}
	train := []string{"adapter_down_w", "adapter_down_b", "adapter_up_w", "adapter_up_b", HeadWeightName, HeadSigmaName}
	gm, err := Build(obj.Model(), Spec{Trainable: train, Loss: LossName})
	if err != nil {
		t.Fatal(err)
	}
	outs := []string{LossName}
	for _, tr := range train {
		outs = append(outs, GradName(tr))
	}
	s := session(t, gm, append([]string{vit.InputName, LabelsName}, train...), outs, false)
	shape, img := goldenFloats(t, f, "input")
	labels := goldenTensor(t, f, "labels").Int64s()
	var params []ort.Tensor
	for _, tr := range train {
		ps, v := goldenFloats(t, f, "adapter/"+tr)
		params = append(params, tensorOf(tFloat, ps, v))
	}
	feed := func(from, to int) []ort.Tensor {
		per := len(img) / int(shape[0])
		in := []ort.Tensor{tensorOf(tFloat, []int64{int64(to - from), shape[1], shape[2], shape[3]}, img[from*per:to*per]),
			{Shape: []int64{int64(to - from)}, I64: labels[from:to]}}
		return append(in, params...)
	}
	n := int(shape[0])
	all := run(t, s, feed(0, n))
	mean := make([][]float64, len(train))
	for i := 0; i < n; i++ {
		one := run(t, s, feed(i, i+1))
		for k := range train {
			g := floats(one[1+k])
			if mean[k] == nil {
				mean[k] = make([]float64, len(g))
			}
			for j, x := range g {
				mean[k][j] += x / float64(n)
			}
		}
	}
	for k, tr := range train {
		if e := relErr(floats(all[1+k]), mean[k]); e > 1e-5 {
			t.Errorf("grad/%s at batch %d differs from the mean of batch-1 gradients by %.3g", tr, n, e)
		}
	}
}
