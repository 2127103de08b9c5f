//go:build cgo

package grad

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/cl-dev/cl/internal/testenv/orttest"
	"github.com/cl-dev/cl/models/onnxpb"
	"github.com/cl-dev/cl/models/ort"
)

// needORT is orttest.Need: ONNX Runtime or skip (fail under CI=true).
func needORT(t testing.TB) { t.Helper(); orttest.Need(t) }

func marshal(t testing.TB, m *onnxpb.ModelProto) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// session opens m on the CPU with one thread; float64 graphs run without
// ONNX Runtime's graph rewrites (its fused kernels are float32 only).
func session(t testing.TB, m *onnxpb.ModelProto, inputs, outputs []string, f64 bool) *ort.Session {
	t.Helper()
	s, err := ort.NewSession(t.Name(), marshal(t, m), inputs, outputs, ort.SessionOptions{Threads: 1, NoOptimization: f64})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func run(t testing.TB, s *ort.Session, in []ort.Tensor) []ort.Tensor {
	t.Helper()
	out, err := s.Run(in)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// floats reads a float or double tensor as float64s.
func floats(x ort.Tensor) []float64 {
	if x.F64 != nil {
		return x.F64
	}
	v := make([]float64, len(x.F32))
	for i, f := range x.F32 {
		v[i] = float64(f)
	}
	return v
}

func tensorOf(dt int32, shape []int64, v []float64) ort.Tensor {
	if dt == tDouble {
		return ort.Tensor{Shape: shape, F64: append([]float64(nil), v...)}
	}
	f := make([]float32, len(v))
	for i, x := range v {
		f[i] = float32(x)
	}
	return ort.Tensor{Shape: shape, F32: f}
}

// fdIn is one input of a finite-difference case.
type fdIn struct {
	name  string
	decl  []int64 // declared dims, < 0 symbolic; nil = shape
	shape []int64
	train bool
	scale float64 // of the random values (default 1)
	off   float64 // added to them
	ints  []int64 // int64 input values (never trainable)
	bools []bool  // bool input values
}

type fdCase struct {
	name  string
	dt    int32 // tDouble unless set
	ins   []fdIn
	outs  []string
	build func(g *tgraph)
	tol   float64 // relative tolerance (default 1e-6 double, 3e-3 float)
	h     float64 // finite-difference step (default 1e-6 double, 1e-2 float)
}

// checkFD builds the forward graph, adds loss = Σ_k Σ y_k·R_k with random
// R_k, differentiates it with Build and compares every gradient element
// with a central difference of the loss, run on ONNX Runtime.
func checkFD(t *testing.T, c fdCase) {
	t.Helper()
	dt := c.dt
	if dt == 0 {
		dt = tDouble
	}
	r := rand.New(rand.NewPCG(7, uint64(len(c.name))))
	g := newTGraph(dt)
	var names []string
	var feeds []ort.Tensor
	var train []string
	vals := map[string][]float64{}
	for _, in := range c.ins {
		decl := in.decl
		if decl == nil {
			decl = in.shape
		}
		names = append(names, in.name)
		switch {
		case in.ints != nil:
			g.input(in.name, tInt64, decl...)
			feeds = append(feeds, ort.Tensor{Shape: in.shape, I64: in.ints})
		case in.bools != nil:
			g.input(in.name, tBool, decl...)
			feeds = append(feeds, ort.Tensor{Shape: in.shape, Bool: in.bools})
		default:
			g.input(in.name, dt, decl...)
			sc := in.scale
			if sc == 0 {
				sc = 1
			}
			v := randn(r, numel(in.shape), sc, in.off)
			if dt == tFloat {
				for i := range v {
					v[i] = float64(float32(v[i]))
				}
			}
			vals[in.name] = v
			feeds = append(feeds, tensorOf(dt, in.shape, v))
			if in.train {
				train = append(train, in.name)
			}
		}
	}
	c.build(g)
	for _, o := range c.outs {
		g.output(o)
	}
	f64 := dt == tDouble
	fwd := session(t, g.m, names, c.outs, f64)
	ys := run(t, fwd, feeds)
	var terms []string
	g.initI64("flat", nil, -1)
	for k, o := range c.outs {
		rn := fmt.Sprintf("R_%d", k)
		odt := tFloat
		if ys[k].F64 != nil {
			odt = tDouble
		}
		g.initF(rn, odt, ys[k].Shape, randn(r, ys[k].Len(), 1, 0))
		g.node("Mul", []string{o, rn}, []string{"wy_" + o})
		g.node("Reshape", []string{"wy_" + o, "flat"}, []string{"wyf_" + o})
		g.node("ReduceSum", []string{"wyf_" + o}, []string{"term_" + o}, attrInt("keepdims", 1))
		terms = append(terms, "term_"+o)
	}
	g.node("Sum", terms, []string{"loss"})
	g.g().Output = nil
	g.output("loss")
	lossSess := session(t, g.m, names, []string{"loss"}, f64)

	gm, err := Build(g.m, Spec{Trainable: train, Loss: "loss", Keep: c.outs})
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	for _, n := range gm.Graph.Node {
		if d := n.GetDomain(); d != "" {
			t.Fatalf("gradient graph uses domain %q (node %s)", d, n.GetName())
		}
	}
	outs := append([]string{"loss"}, c.outs...)
	for _, tr := range train {
		outs = append(outs, GradName(tr))
	}
	gs := session(t, gm, names, outs, f64)
	res := run(t, gs, feeds)
	base := floats(run(t, lossSess, feeds)[0])[0]
	if got := floats(res[0])[0]; math.Abs(got-base) > 1e-9*(1+math.Abs(base)) && dt == tDouble {
		t.Fatalf("loss %v from the gradient graph, %v from the forward graph", got, base)
	}
	h, tol := 1e-6, 1e-6
	if dt == tFloat {
		h, tol = 1e-2, 3e-3
	}
	if c.tol != 0 {
		tol = c.tol
	}
	if c.h != 0 {
		h = c.h
	}
	for k, tr := range train {
		got := floats(res[1+len(c.outs)+k])
		idx := indexOfName(names, tr)
		x := vals[tr]
		if len(got) != len(x) {
			t.Fatalf("grad/%s has %d values, want %d (shape %v)", tr, len(got), len(x), res[1+len(c.outs)+k].Shape)
		}
		fd := make([]float64, len(x))
		for i := range x {
			old := x[i]
			eval := func(v float64) float64 {
				x[i] = v
				feeds[idx] = tensorOf(dt, feeds[idx].Shape, x)
				return floats(run(t, lossSess, feeds)[0])[0]
			}
			fd[i] = (eval(old+h) - eval(old-h)) / (2 * h)
			x[i] = old
			feeds[idx] = tensorOf(dt, feeds[idx].Shape, x)
		}
		if e := relErr(got, fd); e > tol {
			t.Errorf("grad/%s: relative error %.3g > %.3g\n got %v\n fd  %v", tr, e, tol, trim(got), trim(fd))
		}
	}
}

func indexOfName(v []string, s string) int {
	for i, x := range v {
		if x == s {
			return i
		}
	}
	return -1
}

// relErr is max|a−b| / max(max|b|, 1e-3).
func relErr(a, b []float64) float64 {
	d, m := 0.0, 1e-3
	for i := range a {
		d = math.Max(d, math.Abs(a[i]-b[i]))
		m = math.Max(m, math.Abs(b[i]))
	}
	return d / m
}

func trim(v []float64) []float64 {
	if len(v) > 8 {
		return v[:8]
	}
	return v
}

// one is a case with a single node "y" = op(inputs).
func one(name, op string, ins []fdIn, attrs ...attr) fdCase {
	var in []string
	for _, x := range ins {
		in = append(in, x.name)
	}
	return fdCase{name: name, ins: ins, outs: []string{"y"}, build: func(g *tgraph) {
		g.node(op, in, []string{"y"}, attrs...)
	}}
}

func tr(name string, shape ...int64) fdIn { return fdIn{name: name, shape: shape, train: true} }

func float32Case(c fdCase) fdCase { c.dt = tFloat; return c }

func fdCases() []fdCase {
	pos := func(x fdIn) fdIn { x.off, x.scale = 2, 0.5; return x }
	sym := func(x fdIn, decl ...int64) fdIn { x.decl = decl; return x }
	consts := func(g *tgraph, name string, v ...int64) { g.initI64(name, nil, v...) }
	cs := []fdCase{
		one("Add/broadcast", "Add", []fdIn{sym(tr("a", 2, 3, 4), -1, 3, 4), tr("b", 4)}),
		one("Add/both", "Add", []fdIn{tr("a", 2, 1, 4), tr("b", 3, 1)}),
		one("Add/symbolic", "Add", []fdIn{sym(tr("a", 2, 3), -1, -1), sym(tr("b", 1, 3), 1, -1)}),
		one("Sub", "Sub", []fdIn{tr("a", 3, 1), tr("b", 2, 1, 4)}),
		one("Mul", "Mul", []fdIn{tr("a", 2, 3), tr("b", 3)}),
		one("Div", "Div", []fdIn{tr("a", 2, 3), pos(tr("b", 2, 1))}),
		{name: "Pow/const", ins: []fdIn{pos(tr("a", 2, 3))}, outs: []string{"y"}, build: func(g *tgraph) {
			g.initF("p", tDouble, []int64{}, []float64{3})
			g.node("Pow", []string{"a", "p"}, []string{"y"})
		}},
		{name: "Pow/square", ins: []fdIn{tr("a", 2, 3)}, outs: []string{"y"}, build: func(g *tgraph) {
			g.initF("p", tDouble, []int64{}, []float64{2})
			g.node("Pow", []string{"a", "p"}, []string{"y"})
		}},
		one("Pow/both", "Pow", []fdIn{pos(tr("a", 2, 3)), tr("p", 3)}),
		one("Sqrt", "Sqrt", []fdIn{pos(tr("x", 2, 3))}),
		one("Relu", "Relu", []fdIn{tr("x", 3, 4)}),
		one("Tanh", "Tanh", []fdIn{tr("x", 3, 4)}),
		one("Sigmoid", "Sigmoid", []fdIn{tr("x", 3, 4)}),
		one("Exp", "Exp", []fdIn{tr("x", 3, 4)}),
		one("Log", "Log", []fdIn{pos(tr("x", 3, 4))}),
		one("Neg", "Neg", []fdIn{tr("x", 3, 4)}),
		one("Identity", "Identity", []fdIn{tr("x", 3, 4)}),
		one("Reciprocal", "Reciprocal", []fdIn{pos(tr("x", 3, 4))}),
		one("Abs", "Abs", []fdIn{tr("x", 3, 4)}),
		one("Dropout/inference", "Dropout", []fdIn{tr("x", 3, 4)}),
		one("Flatten", "Flatten", []fdIn{sym(tr("x", 2, 3, 4), -1, 3, 4)}, attrInt("axis", 2)),
		one("Sum/broadcast", "Sum", []fdIn{tr("a", 2, 3, 4), tr("b", 4), tr("c", 3, 1)}),
		float32Case(one("Erf", "Erf", []fdIn{tr("x", 3, 4)})),
		one("MatMul/linear", "MatMul", []fdIn{sym(tr("a", 2, 3, 4), -1, 3, 4), tr("b", 4, 5)}),
		one("MatMul/batched", "MatMul", []fdIn{tr("a", 2, 1, 3, 4), tr("b", 3, 4, 2)}),
		one("MatMul/2d", "MatMul", []fdIn{tr("a", 3, 4), tr("b", 4, 2)}),
		one("MatMul/lhs2d", "MatMul", []fdIn{tr("a", 3, 4), tr("b", 2, 4, 5)}),
		one("Gemm", "Gemm", []fdIn{tr("a", 3, 4), tr("b", 4, 2), tr("c", 2)}, attrFloat("alpha", 0.5), attrFloat("beta", 2)),
		one("Gemm/transA", "Gemm", []fdIn{tr("a", 4, 3), tr("b", 4, 2), tr("c", 3, 1)}, attrInt("transA", 1)),
		one("Gemm/transB", "Gemm", []fdIn{tr("a", 3, 4), tr("b", 2, 4), tr("c", 3, 2)}, attrInt("transB", 1)),
		one("Gemm/both", "Gemm", []fdIn{tr("a", 4, 3), tr("b", 2, 4)}, attrInt("transA", 1), attrInt("transB", 1), attrFloat("alpha", 1.5)),
		float32Case(one("LayerNorm/last", "LayerNormalization", []fdIn{sym(tr("x", 2, 3, 5), -1, 3, 5), tr("s", 5), tr("b", 5)}, attrInt("axis", -1), attrFloat("epsilon", 1e-5))),
		one("LayerNorm/axis1", "LayerNormalization", []fdIn{tr("x", 2, 3, 4), tr("s", 3, 4), tr("b", 3, 4)}, attrInt("axis", 1)),
		one("Softmax", "Softmax", []fdIn{tr("x", 2, 3, 4)}),
		one("Softmax/axis1", "Softmax", []fdIn{tr("x", 2, 3, 4)}, attrInt("axis", 1)),
		one("LogSoftmax", "LogSoftmax", []fdIn{tr("x", 3, 5)}),
		one("ReduceMean", "ReduceMean", []fdIn{sym(tr("x", 2, 3, 4), -1, 3, 4)}, attrInts("axes", 1), attrInt("keepdims", 0)),
		one("ReduceMean/all", "ReduceMean", []fdIn{tr("x", 2, 3)}),
		one("ReduceMean/symbolic", "ReduceMean", []fdIn{sym(tr("x", 2, 3, 4), -1, 3, -1)}, attrInts("axes", 0, 2)),
		{name: "Add/runtime-axes", ins: []fdIn{tr("a", 2, 3), tr("b", 3)}, outs: []string{"y"}, build: func(g *tgraph) {
			// Shapes inference cannot relate: the broadcast axes are found at run time.
			g.g().Input[0] = valueInfo("a", &tinfo{dt: tDouble, rank: 2, dims: []dim{{n: -1, sym: "A"}, {n: -1, sym: "B"}}})
			g.g().Input[1] = valueInfo("b", &tinfo{dt: tDouble, rank: 1, dims: []dim{{n: -1, sym: "C"}}})
			g.node("Add", []string{"a", "b"}, []string{"y"})
		}},
		one("Transpose", "Transpose", []fdIn{tr("x", 2, 3, 4)}, attrInts("perm", 1, 2, 0)),
		one("Transpose/default", "Transpose", []fdIn{tr("x", 2, 3, 4)}),
		{name: "Cast", ins: []fdIn{tr("x", 2, 3)}, outs: []string{"y"}, h: 1e-2, tol: 1e-3, build: func(g *tgraph) {
			g.node("Cast", []string{"x"}, []string{"f"}, attrInt("to", int64(tFloat)))
			g.node("Cast", []string{"f"}, []string{"y"}, attrInt("to", int64(tDouble)))
		}},
		{name: "ReduceSum", ins: []fdIn{sym(tr("x", 2, 3, 4), -1, 3, 4)}, outs: []string{"y"}, build: func(g *tgraph) {
			consts(g, "axes", 0, -1)
			g.node("ReduceSum", []string{"x", "axes"}, []string{"y"}, attrInt("keepdims", 0))
		}},
		{name: "Reshape", ins: []fdIn{sym(tr("x", 2, 3, 4), -1, 3, 4)}, outs: []string{"y"}, build: func(g *tgraph) {
			consts(g, "s", 0, -1, 2)
			g.node("Reshape", []string{"x", "s"}, []string{"y"})
		}},
		{name: "Squeeze+Unsqueeze", ins: []fdIn{tr("x", 2, 1, 3)}, outs: []string{"y"}, build: func(g *tgraph) {
			consts(g, "a1", 1)
			consts(g, "a2", 0, 3)
			g.node("Squeeze", []string{"x", "a1"}, []string{"s"})
			g.node("Unsqueeze", []string{"s", "a2"}, []string{"y"})
		}},
		{name: "Concat/two", ins: []fdIn{sym(tr("a", 2, 1, 3), -1, 1, 3), fdIn{name: "b", shape: []int64{2, 2, 3}}, tr("c", 2, 3, 3)}, outs: []string{"y"},
			build: func(g *tgraph) { g.node("Concat", []string{"a", "b", "c"}, []string{"y"}, attrInt("axis", 1)) }},
		{name: "Concat/one", ins: []fdIn{fdIn{name: "a", shape: []int64{2, 1, 3}}, tr("b", 2, 2, 3)}, outs: []string{"y"},
			build: func(g *tgraph) { g.node("Concat", []string{"a", "b"}, []string{"y"}, attrInt("axis", 1)) }},
		{name: "Concat/dynamic", ins: []fdIn{sym(tr("a", 2, 3), 2, -1), sym(fdIn{name: "b", shape: []int64{2, 2}}, 2, -1), sym(tr("c", 2, 2), 2, -1)}, outs: []string{"y"},
			build: func(g *tgraph) { g.node("Concat", []string{"a", "b", "c"}, []string{"y"}, attrInt("axis", -1)) }},
		{name: "Split", ins: []fdIn{tr("x", 2, 6)}, outs: []string{"y0", "y2"}, build: func(g *tgraph) {
			consts(g, "sp", 1, 2, 3)
			g.node("Split", []string{"x", "sp"}, []string{"y0", "y1", "y2"}, attrInt("axis", -1))
		}},
		{name: "Slice", ins: []fdIn{sym(tr("x", 2, 5, 4), -1, 5, 4)}, outs: []string{"y"}, build: func(g *tgraph) {
			consts(g, "st", 1, -3)
			consts(g, "en", 4, 100)
			consts(g, "ax", 1, 2)
			g.node("Slice", []string{"x", "st", "en", "ax"}, []string{"y"})
		}},
		{name: "Gather/scalar", ins: []fdIn{tr("x", 3, 2, 4)}, outs: []string{"y"}, build: func(g *tgraph) {
			g.initI64("i", []int64{}, 1)
			g.node("Gather", []string{"x", "i"}, []string{"y"}, attrInt("axis", 1))
		}},
		{name: "Gather/every", ins: []fdIn{tr("x", 2, 3, 2)}, outs: []string{"y"}, build: func(g *tgraph) {
			for i := 0; i < 3; i++ {
				g.initI64(fmt.Sprint("i", i), []int64{}, int64(i))
				g.node("Gather", []string{"x", fmt.Sprint("i", i)}, []string{fmt.Sprint("p", i)}, attrInt("axis", 1))
			}
			g.node("Mul", []string{"p0", "p2"}, []string{"m"})
			g.node("Add", []string{"m", "p1"}, []string{"y"})
		}},
		{name: "Gather/some", ins: []fdIn{tr("x", 3, 2)}, outs: []string{"y"}, build: func(g *tgraph) {
			g.initI64("i0", []int64{}, 0)
			g.initI64("i2", []int64{}, -1)
			g.node("Gather", []string{"x", "i0"}, []string{"a"})
			g.node("Gather", []string{"x", "i0"}, []string{"b"})
			g.node("Gather", []string{"x", "i2"}, []string{"c"})
			g.node("Mul", []string{"a", "b"}, []string{"m"})
			g.node("Add", []string{"m", "c"}, []string{"y"})
		}},
		{name: "Gather/indices", ins: []fdIn{tr("x", 3, 4), {name: "i", shape: []int64{2, 3}, ints: []int64{0, 2, 2, -1, 0, 1}}}, outs: []string{"y"},
			build: func(g *tgraph) { g.node("Gather", []string{"x", "i"}, []string{"y"}, attrInt("axis", 1)) }},
		{name: "Gather/axis0", ins: []fdIn{tr("x", 4, 3), {name: "i", shape: []int64{3}, ints: []int64{3, 0, 3}}}, outs: []string{"y"},
			build: func(g *tgraph) { g.node("Gather", []string{"x", "i"}, []string{"y"}) }},
		{name: "GatherElements", ins: []fdIn{tr("x", 3, 4), {name: "i", shape: []int64{3, 2}, ints: []int64{0, 0, 3, 1, 2, 2}}}, outs: []string{"y"},
			build: func(g *tgraph) { g.node("GatherElements", []string{"x", "i"}, []string{"y"}, attrInt("axis", 1)) }},
		{name: "Expand", ins: []fdIn{sym(tr("x", 3, 1), -1, 1), sym(fdIn{name: "z", shape: []int64{2, 3, 4}}, -1, 3, 4)}, outs: []string{"y"},
			build: func(g *tgraph) {
				g.node("Shape", []string{"z"}, []string{"sz"})
				g.node("Expand", []string{"x", "sz"}, []string{"y"})
			}},
		{name: "Where", ins: []fdIn{{name: "c", shape: []int64{3, 1}, bools: []bool{true, false, true}}, tr("a", 3, 4), tr("b", 4)}, outs: []string{"y"},
			build: func(g *tgraph) { g.node("Where", []string{"c", "a", "b"}, []string{"y"}) }},
		{name: "Constant", ins: []fdIn{tr("x", 2, 3)}, outs: []string{"y"}, build: func(g *tgraph) {
			g.node("Constant", nil, []string{"k"}, attrTensor("value", scalarTensor("", 1.5, tDouble)))
			g.node("Mul", []string{"x", "k"}, []string{"y"})
		}},
		float32Case(fdCase{name: "Conv/patch", ins: []fdIn{sym(tr("x", 2, 3, 4, 6), -1, 3, 4, 6), tr("w", 5, 3, 2, 2), tr("b", 5)}, outs: []string{"y"},
			build: func(g *tgraph) {
				g.node("Conv", []string{"x", "w", "b"}, []string{"y"}, attrInts("kernel_shape", 2, 2), attrInts("strides", 2, 2))
			}}),
		float32Case(fdCase{name: "GELU", ins: []fdIn{tr("x", 3, 4)}, outs: []string{"y"}, build: func(g *tgraph) {
			g.initF("sq2", tFloat, []int64{}, []float64{math.Sqrt2})
			g.initF("one", tFloat, []int64{}, []float64{1})
			g.initF("half", tFloat, []int64{}, []float64{0.5})
			g.node("Div", []string{"x", "sq2"}, []string{"d"})
			g.node("Erf", []string{"d"}, []string{"e"})
			g.node("Add", []string{"e", "one"}, []string{"e1"})
			g.node("Mul", []string{"x", "e1"}, []string{"m"})
			g.node("Mul", []string{"m", "half"}, []string{"y"})
		}}),
		{name: "Attention", ins: []fdIn{sym(tr("q", 2, 2, 3, 4), -1, 2, 3, 4), tr("k", 2, 2, 5, 4), tr("v", 2, 2, 5, 4)}, outs: []string{"y"},
			build: func(g *tgraph) {
				g.initF("sc", tDouble, []int64{}, []float64{0.5})
				g.node("Transpose", []string{"k"}, []string{"kt"}, attrInts("perm", 0, 1, 3, 2))
				g.node("MatMul", []string{"q", "kt"}, []string{"s"})
				g.node("Mul", []string{"s", "sc"}, []string{"s2"})
				g.node("Softmax", []string{"s2"}, []string{"a"}, attrInt("axis", -1))
				g.node("MatMul", []string{"a", "v"}, []string{"y"})
			}},
		{name: "MatMulBT/linear", ins: []fdIn{sym(tr("a", 2, 3, 4), -1, 3, 4), tr("b", 5, 4)}, outs: []string{"y"},
			build: func(g *tgraph) {
				g.node("Transpose", []string{"b"}, []string{"bt"})
				g.node("MatMul", []string{"a", "bt"}, []string{"y"})
			}},
		{name: "MatMulBT/broadcast", ins: []fdIn{tr("a", 2, 1, 3, 4), tr("b", 3, 5, 4)}, outs: []string{"y"},
			build: func(g *tgraph) {
				g.node("Transpose", []string{"b"}, []string{"bt"}, attrInts("perm", 0, 2, 1))
				g.node("MatMul", []string{"a", "bt"}, []string{"y"})
			}},
		{name: "FrozenWeight", ins: []fdIn{tr("x", 2, 3), fdIn{name: "w", shape: []int64{3, 3}}}, outs: []string{"y"},
			build: func(g *tgraph) {
				g.node("MatMul", []string{"x", "w"}, []string{"h"})
				g.node("Tanh", []string{"h"}, []string{"t"})
				g.node("MatMul", []string{"t", "w"}, []string{"y"})
			}},
	}
	return cs
}

func TestFiniteDifferences(t *testing.T) {
	needORT(t)
	for _, c := range fdCases() {
		t.Run(c.name, func(t *testing.T) { checkFD(t, c) })
	}
}

// TestObjectiveFD checks the heads and the masked cross-entropy (float64)
// against central differences of the loss, with an extra term.
func TestObjectiveFD(t *testing.T) {
	needORT(t)
	for _, c := range []ObjectiveSpec{
		{Head: HeadCosine, Mask: MaskInput},
		{Head: HeadLinear, Mask: MaskRange, Range: [2]int{1, 4}},
		{Head: HeadCosine},
	} {
		t.Run(string(c.Head)+"/"+string(c.Mask), func(t *testing.T) {
			const N, D, C = 3, 4, 5
			r := rand.New(rand.NewPCG(3, 4))
			g := newTGraph(tDouble)
			g.input("f", tDouble, -1, D)
			g.node("Identity", []string{"f"}, []string{"features"})
			obj := NewObjective(g.m)
			sq := obj.Op("ReduceSum", []attr{attrInt("keepdims", 0)}, obj.Op("Mul", nil, "f", "f"))
			obj.AddTerm(Term{Tensor: sq, Weight: 0.3})
			c.Features, c.Classes = "features", C
			if err := obj.Classifier(c); err != nil {
				t.Fatal(err)
			}
			m := obj.Model()
			m.Graph.Output = []*onnxpb.ValueInfoProto{{Name: proto.String(LossName)}}
			second, secondShape := HeadBiasName, []int64{C}
			wShape := []int64{D, C}
			if c.Head == HeadCosine {
				second, secondShape, wShape = HeadSigmaName, []int64{1}, []int64{C, D}
			}
			train := []string{"f", HeadWeightName, second}
			vals := map[string][]float64{"f": randn(r, N*D, 1, 0), HeadWeightName: randn(r, C*D, 1, 0),
				second: randn(r, int(secondShape[0]), 1, 3)}
			names := append(append([]string{}, train...), LabelsName)
			feeds := []ort.Tensor{tensorOf(tDouble, []int64{N, D}, vals["f"]), tensorOf(tDouble, wShape, vals[HeadWeightName]),
				tensorOf(tDouble, secondShape, vals[second]), {Shape: []int64{N}, I64: []int64{1, 3, 2}}}
			if c.Mask == MaskInput {
				names = append(names, ClassMaskName)
				feeds = append(feeds, tensorOf(tDouble, []int64{C}, []float64{1, 1, 1, 1, 0}))
			}
			gm, err := Build(m, Spec{Trainable: train, Loss: LossName, Keep: []string{LogitsName}})
			if err != nil {
				t.Fatal(err)
			}
			outs := []string{LossName, LogitsName}
			for _, tr := range train {
				outs = append(outs, GradName(tr))
			}
			res := run(t, session(t, gm, names, outs, true), feeds)
			logits := floats(res[1])
			if c.Mask != MaskNone && !math.IsInf(logits[C-1], -1) || c.Mask == MaskRange && !math.IsInf(logits[0], -1) {
				t.Fatalf("masked logits not −inf: %v", logits[:C])
			}
			lossSess := session(t, m, names, []string{LossName}, true)
			for k, tr := range train {
				idx := indexOfName(names, tr)
				x := vals[tr]
				fd := make([]float64, len(x))
				for i := range x {
					old := x[i]
					eval := func(v float64) float64 {
						x[i] = v
						feeds[idx] = tensorOf(tDouble, feeds[idx].Shape, x)
						return floats(run(t, lossSess, feeds)[0])[0]
					}
					fd[i] = (eval(old+1e-6) - eval(old-1e-6)) / 2e-6
					x[i] = old
					feeds[idx] = tensorOf(tDouble, feeds[idx].Shape, x)
				}
				got := floats(res[2+k])
				if e := relErr(got, fd); e > 1e-6 {
					t.Errorf("grad/%s: relative error %.3g\n got %v\n fd  %v", tr, e, trim(got), trim(fd))
				}
			}
		})
	}
}

// TestEveryRuleHasFDCase: each registered rule appears in a
// finite-difference case (add one with every new rule).
func TestEveryRuleHasFDCase(t *testing.T) {
	seen := map[string]bool{"_Gelu": false, "_MatMulBT": false}
	for _, c := range fdCases() {
		g := newTGraph(tDouble)
		for _, in := range c.ins {
			g.input(in.name, tDouble, in.shape...)
		}
		c.build(g)
		for _, n := range g.g().Node {
			seen[n.GetOpType()] = true
		}
		switch c.name {
		case "GELU":
			seen["_Gelu"] = true
		case "Attention", "MatMulBT/linear", "MatMulBT/broadcast":
			seen["_MatMulBT"] = true
		}
	}
	for op := range rules {
		if !seen[op] {
			t.Errorf("rule %s has no finite-difference case", op)
		}
	}
}
