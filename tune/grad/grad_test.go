package grad

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/cl-dev/cl/models/onnxpb"
	"github.com/cl-dev/cl/models/vit"
)

// linearGraph: y = Tanh(x·W1 + p)·W2, loss = Σ y (shape [1]); W1, W2 frozen
// initializers, p a trainable input.
func linearGraph() *tgraph {
	g := newTGraph(tFloat)
	g.input("x", tFloat, -1, 3)
	g.input("p", tFloat, 4)
	g.initF("W1", tFloat, []int64{3, 4}, make([]float64, 12))
	g.initF("W2", tFloat, []int64{4, 2}, make([]float64, 8))
	g.initI64("flat", nil, -1)
	g.node("MatMul", []string{"x", "W1"}, []string{"h"})
	g.node("Add", []string{"h", "p"}, []string{"hp"})
	g.node("Tanh", []string{"hp"}, []string{"t"})
	g.node("MatMul", []string{"t", "W2"}, []string{"y"})
	g.node("Reshape", []string{"y", "flat"}, []string{"yf"})
	g.node("ReduceSum", []string{"yf"}, []string{"loss"})
	g.output("loss")
	return g
}

func TestBuildErrors(t *testing.T) {
	cases := []struct {
		name string
		edit func(g *tgraph) Spec
		want []string
	}{
		{"unknown trainable", func(g *tgraph) Spec { return Spec{Trainable: []string{"nope"}, Loss: "loss"} },
			[]string{`trainable "nope"`, "neither an input nor an initializer", "inputs: x, p"}},
		{"no trainable", func(g *tgraph) Spec { return Spec{Loss: "loss"} }, []string{"no trainable"}},
		{"twice", func(g *tgraph) Spec { return Spec{Trainable: []string{"p", "p"}, Loss: "loss"} }, []string{`"p" named twice`}},
		{"unknown loss", func(g *tgraph) Spec { return Spec{Trainable: []string{"p"}, Loss: "lost"} }, []string{`loss "lost"`}},
		{"loss not scalar", func(g *tgraph) Spec { return Spec{Trainable: []string{"p"}, Loss: "y"} }, []string{"must be a scalar"}},
		{"unreached", func(g *tgraph) Spec {
			g.input("q", tFloat, 2)
			return Spec{Trainable: []string{"p", "q"}, Loss: "loss"}
		}, []string{`trainable "q" does not reach the loss`}},
		{"unknown op", func(g *tgraph) Spec {
			g.g().Node[2].OpType = proto.String("Softsign")
			return Spec{Trainable: []string{"p"}, Loss: "loss"}
		}, []string{"no gradient rule for operator Softsign", `node "n_t"`}},
		{"contrib op", func(g *tgraph) Spec {
			g.g().Node[2].Domain = proto.String("com.microsoft")
			g.g().Node[2].OpType = proto.String("FastGelu")
			return Spec{Trainable: []string{"p"}, Loss: "loss"}
		}, []string{"com.microsoft.FastGelu", `node "n_t"`, "not a standard ONNX operator"}},
		{"opset", func(g *tgraph) Spec {
			g.m.OpsetImport[0].Version = proto.Int64(13)
			return Spec{Trainable: []string{"p"}, Loss: "loss"}
		}, []string{"opset 13"}},
		{"kept unknown", func(g *tgraph) Spec { return Spec{Trainable: []string{"p"}, Loss: "loss", Keep: []string{"z"}} },
			[]string{`kept output "z"`}},
		{"kept twice", func(g *tgraph) Spec { return Spec{Trainable: []string{"p"}, Loss: "loss", Keep: []string{"y", "loss"}} },
			[]string{`output "loss" named twice`}},
		{"frozen only", func(g *tgraph) Spec { return Spec{Trainable: []string{"x"}, Loss: "loss"} }, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := linearGraph()
			spec := c.edit(g)
			_, err := Build(g.m, spec)
			if c.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", c.want)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// TestBuildLeavesInputAlone: Build works on a copy.
func TestBuildLeavesInputAlone(t *testing.T) {
	g := linearGraph()
	before, _ := proto.Marshal(g.m)
	if _, err := Build(g.m, Spec{Trainable: []string{"p", "W2"}, Loss: "loss"}); err != nil {
		t.Fatal(err)
	}
	after, _ := proto.Marshal(g.m)
	if string(before) != string(after) {
		t.Fatal("Build modified its input model")
	}
}

// TestInitializerBecomesInput: a trainable initializer leaves the
// initializers and becomes an input of the same shape.
func TestInitializerBecomesInput(t *testing.T) {
	g := linearGraph()
	m, err := Build(g.m, Spec{Trainable: []string{"W2"}, Loss: "loss"})
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range m.Graph.Initializer {
		if x.GetName() == "W2" {
			t.Fatal("W2 is still an initializer")
		}
	}
	found := false
	for _, in := range m.Graph.Input {
		if in.GetName() == "W2" {
			found = true
			d := in.GetType().GetTensorType().GetShape().GetDim()
			if len(d) != 2 || d[0].GetDimValue() != 4 || d[1].GetDimValue() != 2 {
				t.Fatalf("input W2 has shape %v", d)
			}
		}
	}
	if !found {
		t.Fatal("W2 is not an input")
	}
	outs := []string{}
	for _, o := range m.Graph.Output {
		outs = append(outs, o.GetName())
	}
	if strings.Join(outs, ",") != "loss,grad/W2" {
		t.Fatalf("outputs %v", outs)
	}
}

// consumers maps each tensor to the nodes that read it.
func consumers(g *onnxpb.GraphProto) map[string][]*onnxpb.NodeProto {
	c := map[string][]*onnxpb.NodeProto{}
	for _, n := range g.GetNode() {
		for _, in := range n.GetInput() {
			c[in] = append(c[in], n)
		}
	}
	return c
}

// TestPruning: with frozen weights, backward nodes never read the input of
// a MatMul whose weight is a frozen initializer (the activation need not be
// kept), nothing is emitted for nodes before the first trainable tensor,
// and the graph has only standard operators.
func TestPruning(t *testing.T) {
	w, err := vit.Load("../../models/vit/testdata/vit.safetensors", 3)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []vit.Variant{vit.Adapter, vit.VPTDeep, vit.Prefix} {
		t.Run(string(v), func(t *testing.T) {
			m, err := vit.Build(w, vit.Options{Variant: v})
			if err != nil {
				t.Fatal(err)
			}
			obj := NewObjective(m)
			if err := obj.Classifier(ObjectiveSpec{Features: vit.OutputName, Classes: 4, Head: HeadCosine}); err != nil {
				t.Fatal(err)
			}
			var train []string
			for _, in := range obj.Model().Graph.Input {
				if n := in.GetName(); n != vit.InputName && n != LabelsName {
					train = append(train, n)
				}
			}
			gm, err := Build(obj.Model(), Spec{Trainable: train, Loss: LossName, Keep: []string{LogitsName}})
			if err != nil {
				t.Fatal(err)
			}
			inits := map[string]bool{}
			for _, x := range gm.Graph.Initializer {
				inits[x.GetName()] = true
			}
			cons := consumers(gm.Graph)
			frozenMatMuls, bwd := 0, 0
			for _, n := range gm.Graph.Node {
				if n.GetDomain() != "" {
					t.Fatalf("node %s is in domain %s", n.GetName(), n.GetDomain())
				}
				if strings.HasPrefix(n.GetName(), "grad_") {
					bwd++
					continue
				}
				if n.GetOpType() != "MatMul" || !inits[n.Input[1]] {
					continue
				}
				frozenMatMuls++
				for _, c := range cons[n.Input[0]] {
					if strings.HasPrefix(c.GetName(), "grad_") && c.GetOpType() != "Shape" {
						t.Errorf("backward node %s (%s) reads %q, the input of the frozen MatMul %s", c.GetName(), c.GetOpType(), n.Input[0], n.GetName())
					}
				}
			}
			if frozenMatMuls < 4*3 || bwd == 0 {
				t.Fatalf("%d frozen MatMuls, %d backward nodes", frozenMatMuls, bwd)
			}
			// The GELU pattern is differentiated as a whole: backward nodes
			// read its input only, not the erf's input or output.
			erfs := 0
			for _, n := range gm.Graph.Node {
				if n.GetOpType() != "Erf" || strings.HasPrefix(n.GetName(), "grad_") {
					continue
				}
				erfs++
				for _, x := range []string{n.Input[0], n.Output[0]} {
					for _, c := range cons[x] {
						if strings.HasPrefix(c.GetName(), "grad_") {
							t.Errorf("backward node %s reads %q of the GELU", c.GetName(), x)
						}
					}
				}
			}
			if erfs != 3 {
				t.Errorf("%d forward Erf nodes, want 3", erfs)
			}
			// The patch embedding (before any trainable tensor) has no
			// backward: no backward node reads the Conv's output.
			for _, n := range gm.Graph.Node {
				if n.GetOpType() == "Conv" {
					for _, c := range cons[n.Output[0]] {
						if strings.HasPrefix(c.GetName(), "grad_") {
							t.Errorf("backward node %s reads the patch embedding", c.GetName())
						}
					}
				}
			}
		})
	}
}

// TestRuntimeShapes: when inference cannot relate symbolic dimensions, the
// broadcast axes and the mean's count are computed at run time (their
// values are checked by the finite-difference cases Add/runtime-axes and
// ReduceMean/symbolic).
func TestRuntimeShapes(t *testing.T) {
	g := newTGraph(tFloat)
	g.g().Input = append(g.g().Input,
		valueInfo("a", &tinfo{dt: tFloat, rank: 2, dims: []dim{{n: -1, sym: "A"}, {n: -1, sym: "B"}}}),
		valueInfo("b", &tinfo{dt: tFloat, rank: 1, dims: []dim{{n: -1, sym: "C"}}}))
	g.initI64("flat", nil, -1)
	g.node("Add", []string{"a", "b"}, []string{"y"})
	g.node("ReduceMean", []string{"y"}, []string{"m"}, attrInts("axes", 0), attrInt("keepdims", 0))
	g.node("Reshape", []string{"m", "flat"}, []string{"mf"})
	g.node("ReduceSum", []string{"mf"}, []string{"loss"})
	m, err := Build(g.m, Spec{Trainable: []string{"a", "b"}, Loss: "loss"})
	if err != nil {
		t.Fatal(err)
	}
	ops := map[string]int{}
	for _, n := range m.Graph.Node {
		ops[n.GetOpType()]++
	}
	if ops["NonZero"] == 0 || ops["Size"] == 0 {
		t.Fatalf("no run-time axes or count: ops %v", ops)
	}
}

// TestDeterministic: the same model and spec give the same graph bytes.
func TestDeterministic(t *testing.T) {
	w, err := vit.Load("../../models/vit/testdata/vit.safetensors", 3)
	if err != nil {
		t.Fatal(err)
	}
	var prev []byte
	for i := 0; i < 3; i++ {
		m, err := vit.Build(w, vit.Options{Variant: vit.SSF})
		if err != nil {
			t.Fatal(err)
		}
		obj := NewObjective(m)
		if err := obj.Classifier(ObjectiveSpec{Features: vit.OutputName, Classes: 4, Head: HeadLinear, Mask: MaskRange, Range: [2]int{0, 2}}); err != nil {
			t.Fatal(err)
		}
		gm, err := Build(obj.Model(), Spec{Trainable: []string{"ssf_qkv", "ssf_fc1", HeadWeightName, "blocks.1.norm2.weight"}, Loss: LossName})
		if err != nil {
			t.Fatal(err)
		}
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(gm)
		if err != nil {
			t.Fatal(err)
		}
		if prev != nil && string(b) != string(prev) {
			t.Fatal("two builds differ")
		}
		prev = b
	}
}

// TestMatMulTransposedOperand: attention's q·kᵀ with kᵀ a Transpose of k
// differentiates without reading kᵀ and without transposing a gradient
// afterwards: g_q = g·k, g_k = gᵀ·q (one Transpose of g, which ONNX Runtime
// folds into the product). Values: the Attention and MatMulBT
// finite-difference cases.
func TestMatMulTransposedOperand(t *testing.T) {
	g := newTGraph(tFloat)
	g.input("q", tFloat, 2, 2, 3, 4)
	g.input("k", tFloat, 2, 2, 5, 4)
	g.node("Transpose", []string{"k"}, []string{"kt"}, attrInts("perm", 0, 1, 3, 2))
	g.node("MatMul", []string{"q", "kt"}, []string{"s"})
	g.node("ReduceSum", []string{"s"}, []string{"loss"}, attrInt("keepdims", 0))
	m, err := Build(g.m, Spec{Trainable: []string{"q", "k"}, Loss: "loss"})
	if err != nil {
		t.Fatal(err)
	}
	transposes := 0
	for _, n := range m.Graph.Node {
		if !strings.HasPrefix(n.GetName(), "grad_") {
			continue
		}
		for _, in := range n.GetInput() {
			if in == "kt" {
				t.Errorf("backward node %s (%s) reads kᵀ", n.GetName(), n.GetOpType())
			}
		}
		if n.GetOpType() == "Transpose" {
			transposes++
			if p := attrIntsOr(n, "perm", nil); !swapsLast2(p, 4) {
				t.Errorf("backward Transpose %s has perm %v", n.GetName(), p)
			}
		}
	}
	if transposes != 1 {
		t.Errorf("%d backward Transposes, want 1 (gᵀ for g_k)", transposes)
	}
}
