package grad

import (
	"fmt"
	"strconv"

	"github.com/cl-dev/cl/models/onnxpb"
)

// dim is one dimension (or one value of a shape tensor): known (sym == "")
// or a symbol. Two equal symbols are the same size at run time; a different
// symbol may or may not be. Unknown sizes get fresh symbols ("?17").
type dim struct {
	n   int64
	sym string
}

func (d dim) known() bool { return d.sym == "" }

func (d dim) String() string {
	if d.known() {
		return strconv.FormatInt(d.n, 10)
	}
	return d.sym
}

func known(n int64) dim { return dim{n: n} }

// tinfo is what shape inference knows about a tensor.
type tinfo struct {
	dt   int32 // element type; 0 = unknown
	rank int   // -1 = unknown
	dims []dim
	// val holds the values of a small int64 tensor of rank ≤ 1 (shapes,
	// axes, indices) when known, symbolic entries included; nil otherwise.
	val []dim
	// fval holds the values of a small float constant (a Pow exponent).
	fval []float64
}

func (t *tinfo) String() string {
	if t == nil || t.rank < 0 {
		return "?"
	}
	return fmt.Sprint(t.dims)
}

// staticDims returns the dims as int64s when all are known.
func (t *tinfo) staticDims() ([]int64, bool) {
	if t == nil || t.rank < 0 {
		return nil, false
	}
	out := make([]int64, t.rank)
	for i, d := range t.dims {
		if !d.known() {
			return nil, false
		}
		out[i] = d.n
	}
	return out, true
}

// shapes runs a light shape inference over the operators the rules and the
// losses use; other operators give tensors of unknown rank.
type shapes struct {
	m    map[string]*tinfo
	nsym int
}

func (s *shapes) freshDim() dim {
	s.nsym++
	return dim{n: -1, sym: "?" + strconv.Itoa(s.nsym)}
}

func (s *shapes) get(name string) *tinfo {
	if t, ok := s.m[name]; ok {
		return t
	}
	return &tinfo{rank: -1}
}

func (s *shapes) unknownRank(dt int32) *tinfo { return &tinfo{dt: dt, rank: -1} }

func (s *shapes) ofRank(dt int32, r int) *tinfo {
	t := &tinfo{dt: dt, rank: r, dims: make([]dim, r)}
	for i := range t.dims {
		t.dims[i] = s.freshDim()
	}
	return t
}

func infoOfTensor(t *onnxpb.TensorProto) *tinfo {
	ti := &tinfo{dt: t.GetDataType(), rank: len(t.GetDims())}
	n := int64(1)
	for _, d := range t.GetDims() {
		ti.dims = append(ti.dims, known(d))
		n *= d
	}
	if ti.rank <= 1 && n <= 64 {
		if v, ok := tensorInts(t); ok {
			ti.val = make([]dim, len(v))
			for i, x := range v {
				ti.val[i] = known(x)
			}
		}
		if v, ok := tensorFloats(t); ok {
			ti.fval = v
		}
	}
	return ti
}

func (s *shapes) infoOfValue(v *onnxpb.ValueInfoProto) *tinfo {
	tt := v.GetType().GetTensorType()
	if tt == nil || tt.GetShape() == nil {
		return s.unknownRank(tt.GetElemType())
	}
	t := &tinfo{dt: tt.GetElemType(), rank: len(tt.GetShape().GetDim())}
	for _, d := range tt.GetShape().GetDim() {
		switch {
		case d.GetDimParam() != "":
			t.dims = append(t.dims, dim{n: -1, sym: d.GetDimParam()})
		case d.Value != nil && d.GetDimParam() == "" && d.GetDimValue() >= 0 && isDimValue(d):
			t.dims = append(t.dims, known(d.GetDimValue()))
		default:
			t.dims = append(t.dims, s.freshDim())
		}
	}
	return t
}

func isDimValue(d *onnxpb.TensorShapeProto_Dimension) bool {
	_, ok := d.Value.(*onnxpb.TensorShapeProto_Dimension_DimValue)
	return ok
}

// inferGraph fills s for every tensor of g.
func inferGraph(g *onnxpb.GraphProto) *shapes {
	s := &shapes{m: map[string]*tinfo{}}
	for _, v := range g.GetInput() {
		s.m[v.GetName()] = s.infoOfValue(v)
	}
	for _, t := range g.GetInitializer() {
		s.m[t.GetName()] = infoOfTensor(t)
	}
	for _, n := range g.GetNode() {
		s.inferNode(n)
	}
	return s
}

func normAxis(a int64, rank int) int {
	if a < 0 {
		a += int64(rank)
	}
	return int(a)
}

// broadcast gives the numpy-broadcast shape of several infos.
func (s *shapes) broadcast(ts ...*tinfo) *tinfo {
	r := 0
	for _, t := range ts {
		if t.rank < 0 {
			return s.unknownRank(ts[0].dt)
		}
		r = max(r, t.rank)
	}
	out := &tinfo{dt: ts[0].dt, rank: r, dims: make([]dim, r)}
	for i := 0; i < r; i++ {
		var d *dim
		for _, t := range ts {
			j := i - (r - t.rank)
			if j < 0 {
				continue
			}
			x := t.dims[j]
			switch {
			case d == nil || (d.known() && d.n == 1):
				d = &x
			case x.known() && x.n == 1, x == *d:
			case x.known() && !d.known():
				d = &x
			case !x.known() && !d.known():
				// two different symbols: keep the first (they must agree
				// unless one is 1 at run time)
			}
		}
		out.dims[i] = *d
	}
	return out
}

func (s *shapes) set(name string, t *tinfo) {
	if name != "" {
		s.m[name] = t
	}
}

func (s *shapes) inferNode(n *onnxpb.NodeProto) {
	in := func(i int) *tinfo { return s.get(input(n, i)) }
	out := n.GetOutput()
	setAll := func(t *tinfo) {
		for _, o := range out {
			s.set(o, t)
		}
	}
	if n.GetDomain() != "" && n.GetDomain() != "ai.onnx" {
		setAll(s.unknownRank(0))
		return
	}
	x := in(0)
	switch n.GetOpType() {
	case "Identity", "Neg", "Exp", "Log", "Sqrt", "Erf", "Relu", "Tanh", "Sigmoid", "Abs", "Reciprocal",
		"Softmax", "LogSoftmax", "Dropout":
		c := *x
		if n.GetOpType() == "Identity" || n.GetOpType() == "Neg" {
			c.val = nil
			if n.GetOpType() == "Identity" {
				c.val = x.val
			}
		}
		s.set(out[0], &c)
	case "Add", "Sub", "Mul", "Div", "Pow", "Sum", "Max", "Min", "Mod":
		var ts []*tinfo
		for i := range n.GetInput() {
			ts = append(ts, in(i))
		}
		t := s.broadcast(ts...)
		if len(ts) == 2 && ts[0].val != nil && ts[1].val != nil && (len(ts[0].val) == len(ts[1].val) || len(ts[1].val) == 1) {
			t.val = intArith(n.GetOpType(), ts[0].val, ts[1].val)
		}
		s.set(out[0], t)
	case "Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual", "And", "Or", "Xor":
		t := s.broadcast(x, in(1))
		t.dt = tBool
		s.set(out[0], t)
	case "Not", "IsNaN", "IsInf":
		c := *x
		c.dt, c.val = tBool, nil
		s.set(out[0], &c)
	case "Where":
		t := s.broadcast(x, in(1), in(2))
		t.dt = in(1).dt
		s.set(out[0], t)
	case "Cast":
		c := *x
		c.dt = int32(attrIntOr(n, "to", 0))
		c.fval = nil
		s.set(out[0], &c)
	case "Constant":
		if a := getAttr(n, "value"); a != nil && a.GetT() != nil {
			s.set(out[0], infoOfTensor(a.GetT()))
		} else if a := getAttr(n, "value_float"); a != nil {
			s.set(out[0], &tinfo{dt: tFloat, rank: 0, fval: []float64{float64(a.GetF())}})
		} else if a := getAttr(n, "value_int"); a != nil {
			s.set(out[0], &tinfo{dt: tInt64, rank: 0, val: []dim{known(a.GetI())}})
		} else if a := getAttr(n, "value_ints"); a != nil {
			t := &tinfo{dt: tInt64, rank: 1, dims: []dim{known(int64(len(a.GetInts())))}}
			for _, v := range a.GetInts() {
				t.val = append(t.val, known(v))
			}
			s.set(out[0], t)
		} else {
			s.set(out[0], s.unknownRank(0))
		}
	case "Shape":
		if x.rank < 0 {
			s.set(out[0], &tinfo{dt: tInt64, rank: 1, dims: []dim{s.freshDim()}})
			return
		}
		start, end := attrIntOr(n, "start", 0), attrIntOr(n, "end", int64(x.rank))
		a, b := clampIdx(start, x.rank), clampIdx(end, x.rank)
		v := append([]dim(nil), x.dims[a:max(a, b)]...)
		s.set(out[0], &tinfo{dt: tInt64, rank: 1, dims: []dim{known(int64(len(v)))}, val: v})
	case "Size":
		s.set(out[0], &tinfo{dt: tInt64, rank: 0})
	case "ConstantOfShape":
		dt := tFloat
		if a := getAttr(n, "value"); a != nil && a.GetT() != nil {
			dt = a.GetT().GetDataType()
		}
		if x.val != nil {
			s.set(out[0], &tinfo{dt: dt, rank: len(x.val), dims: x.val})
		} else if x.rank == 1 && x.dims[0].known() {
			s.set(out[0], s.ofRank(dt, int(x.dims[0].n)))
		} else {
			s.set(out[0], s.unknownRank(dt))
		}
	case "MatMul":
		s.set(out[0], s.matmul(x, in(1)))
	case "Gemm":
		a, b := x, in(1)
		t := &tinfo{dt: x.dt, rank: 2, dims: []dim{s.freshDim(), s.freshDim()}}
		if a.rank == 2 {
			t.dims[0] = a.dims[attrIntOr(n, "transA", 0)]
		}
		if b.rank == 2 {
			t.dims[1] = b.dims[1-attrIntOr(n, "transB", 0)]
		}
		s.set(out[0], t)
	case "LayerNormalization":
		s.set(out[0], &tinfo{dt: x.dt, rank: x.rank, dims: x.dims})
		if x.rank >= 0 {
			ax := normAxis(attrIntOr(n, "axis", -1), x.rank)
			st := &tinfo{dt: tFloat, rank: x.rank, dims: append([]dim(nil), x.dims...)}
			if attrIntOr(n, "stash_type", 1) != 1 {
				st.dt = x.dt
			}
			for i := ax; i < x.rank; i++ {
				st.dims[i] = known(1)
			}
			for _, o := range out[1:] {
				s.set(o, st)
			}
		}
	case "ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL2", "ReduceSumSquare",
		"ReduceLogSumExp":
		axes, ok := reduceAxes(n, s)
		s.set(out[0], s.reduce(x, axes, ok, attrIntOr(n, "keepdims", 1) == 1, attrIntOr(n, "noop_with_empty_axes", 0) == 1))
	case "ArgMax", "ArgMin":
		t := s.reduce(x, []int64{attrIntOr(n, "axis", 0)}, true, attrIntOr(n, "keepdims", 1) == 1, false)
		t.dt = tInt64
		s.set(out[0], t)
	case "Reshape":
		s.set(out[0], s.reshape(x, in(1), attrIntOr(n, "allowzero", 0) == 1))
	case "Flatten":
		t := &tinfo{dt: x.dt, rank: 2, dims: []dim{s.freshDim(), s.freshDim()}}
		if x.rank >= 0 {
			ax := normAxis(attrIntOr(n, "axis", 1), x.rank)
			t.dims[0] = prodDims(x.dims[:ax], s)
			t.dims[1] = prodDims(x.dims[ax:], s)
		}
		s.set(out[0], t)
	case "Transpose":
		if x.rank < 0 {
			s.set(out[0], s.unknownRank(x.dt))
			return
		}
		perm := attrIntsOr(n, "perm", nil)
		if perm == nil {
			for i := x.rank - 1; i >= 0; i-- {
				perm = append(perm, int64(i))
			}
		}
		t := &tinfo{dt: x.dt, rank: x.rank, dims: make([]dim, x.rank)}
		for i, p := range perm {
			t.dims[i] = x.dims[p]
		}
		s.set(out[0], t)
	case "Concat":
		s.set(out[0], s.concat(n))
	case "Split":
		s.split(n)
	case "Slice":
		s.set(out[0], s.slice(n))
	case "Gather":
		s.set(out[0], s.gather(x, in(1), attrIntOr(n, "axis", 0)))
	case "GatherElements":
		t := *in(1)
		t.dt, t.val = x.dt, nil
		s.set(out[0], &t)
	case "ScatterElements", "ScatterND":
		c := *x
		c.val = nil
		s.set(out[0], &c)
	case "Unsqueeze", "Squeeze":
		s.set(out[0], s.squeeze(n, x))
	case "Expand":
		sh := in(1)
		if x.rank < 0 || sh.val == nil {
			if sh.rank == 1 && sh.dims[0].known() && x.rank >= 0 {
				s.set(out[0], s.ofRank(x.dt, max(x.rank, int(sh.dims[0].n))))
			} else {
				s.set(out[0], s.unknownRank(x.dt))
			}
			return
		}
		s.set(out[0], s.broadcast(x, &tinfo{dt: x.dt, rank: len(sh.val), dims: sh.val}))
	case "Conv":
		s.set(out[0], s.conv(n, x, in(1)))
	case "OneHot":
		idx := in(0)
		if idx.rank < 0 {
			s.set(out[0], s.unknownRank(in(2).dt))
			return
		}
		depth := s.freshDim()
		if v := in(1).val; len(v) == 1 {
			depth = v[0]
		}
		ax := attrIntOr(n, "axis", -1)
		if ax < 0 {
			ax += int64(idx.rank) + 1
		}
		dims := append(append(append([]dim(nil), idx.dims[:ax]...), depth), idx.dims[ax:]...)
		s.set(out[0], &tinfo{dt: in(2).dt, rank: len(dims), dims: dims})
	case "Pad":
		if x.rank < 0 {
			s.set(out[0], s.unknownRank(x.dt))
			return
		}
		t := &tinfo{dt: x.dt, rank: x.rank, dims: make([]dim, x.rank)}
		p := in(1).val
		for i := range t.dims {
			t.dims[i] = s.freshDim()
			if len(p) == 2*x.rank && x.dims[i].known() && p[i].known() && p[i+x.rank].known() {
				t.dims[i] = known(x.dims[i].n + p[i].n + p[i+x.rank].n)
			}
		}
		s.set(out[0], t)
	default:
		setAll(s.unknownRank(x.dt))
	}
}
