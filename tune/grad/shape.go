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

func clampIdx(i int64, r int) int {
	if i < 0 {
		i += int64(r)
	}
	return int(min(max(i, 0), int64(r)))
}

func intArith(op string, a, b []dim) []dim {
	out := make([]dim, len(a))
	for i := range a {
		y := b[0]
		if len(b) > 1 {
			y = b[i]
		}
		if !a[i].known() || !y.known() {
			return nil
		}
		switch op {
		case "Add":
			out[i] = known(a[i].n + y.n)
		case "Sub":
			out[i] = known(a[i].n - y.n)
		case "Mul":
			out[i] = known(a[i].n * y.n)
		case "Div":
			if y.n == 0 {
				return nil
			}
			out[i] = known(a[i].n / y.n)
		default:
			return nil
		}
	}
	return out
}

func prodDims(ds []dim, s *shapes) dim {
	p := int64(1)
	for _, d := range ds {
		if !d.known() {
			return s.freshDim()
		}
		p *= d.n
	}
	return known(p)
}

func (s *shapes) matmul(a, b *tinfo) *tinfo {
	if a.rank < 1 || b.rank < 1 {
		return s.unknownRank(a.dt)
	}
	if a.rank == 1 || b.rank == 1 {
		return s.unknownRank(a.dt) // 1-D MatMul operands have no rule
	}
	ba := &tinfo{rank: a.rank - 2, dims: a.dims[:a.rank-2], dt: a.dt}
	bb := &tinfo{rank: b.rank - 2, dims: b.dims[:b.rank-2], dt: a.dt}
	t := s.broadcast(ba, bb)
	t.dims = append(append([]dim(nil), t.dims...), a.dims[a.rank-2], b.dims[b.rank-1])
	t.rank += 2
	return t
}

// reduceAxes reads a Reduce node's axes (the attribute, or the second input
// of ReduceSum since opset 13). ok is false when they are not constant.
func reduceAxes(n *onnxpb.NodeProto, s *shapes) ([]int64, bool) {
	if a := getAttr(n, "axes"); a != nil {
		return a.GetInts(), true
	}
	if name := input(n, 1); name != "" {
		v := s.get(name).val
		if v == nil {
			return nil, false
		}
		out := make([]int64, len(v))
		for i, d := range v {
			if !d.known() {
				return nil, false
			}
			out[i] = d.n
		}
		return out, true
	}
	return nil, true
}

func (s *shapes) reduce(x *tinfo, axes []int64, ok, keep, noop bool) *tinfo {
	if x.rank < 0 || !ok {
		return s.unknownRank(x.dt)
	}
	if len(axes) == 0 && noop {
		return &tinfo{dt: x.dt, rank: x.rank, dims: x.dims}
	}
	red := make([]bool, x.rank)
	for _, a := range axes {
		red[normAxis(a, x.rank)] = true
	}
	if len(axes) == 0 {
		for i := range red {
			red[i] = true
		}
	}
	t := &tinfo{dt: x.dt}
	for i, d := range x.dims {
		switch {
		case !red[i]:
			t.dims = append(t.dims, d)
		case keep:
			t.dims = append(t.dims, known(1))
		}
	}
	t.rank = len(t.dims)
	return t
}

func (s *shapes) reshape(x, sh *tinfo, allowZero bool) *tinfo {
	if sh.val == nil {
		if sh.rank == 1 && sh.dims[0].known() {
			return s.ofRank(x.dt, int(sh.dims[0].n))
		}
		return s.unknownRank(x.dt)
	}
	t := &tinfo{dt: x.dt, rank: len(sh.val), dims: make([]dim, len(sh.val))}
	neg := -1
	for i, d := range sh.val {
		switch {
		case d.known() && d.n == 0 && !allowZero:
			if x.rank > i {
				t.dims[i] = x.dims[i]
			} else {
				t.dims[i] = s.freshDim()
			}
		case d.known() && d.n == -1:
			neg = i
		default:
			t.dims[i] = d
		}
	}
	if neg >= 0 {
		t.dims[neg] = s.freshDim()
		if x.rank >= 0 {
			// size(x) / Π(other output dims), symbols cancelling.
			num, nsym := splitDims(x.dims)
			den, dsym := splitDims(append(append([]dim(nil), t.dims[:neg]...), t.dims[neg+1:]...))
			if den != 0 && num%den == 0 && sameMultiset(nsym, dsym) {
				t.dims[neg] = known(num / den)
			}
		}
	}
	return t
}

func splitDims(ds []dim) (int64, []string) {
	p := int64(1)
	var syms []string
	for _, d := range ds {
		if d.known() {
			p *= d.n
		} else {
			syms = append(syms, d.sym)
		}
	}
	return p, syms
}

func sameMultiset(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	c := map[string]int{}
	for _, x := range a {
		c[x]++
	}
	for _, x := range b {
		c[x]--
	}
	for _, v := range c {
		if v != 0 {
			return false
		}
	}
	return true
}

func (s *shapes) concat(n *onnxpb.NodeProto) *tinfo {
	first := s.get(input(n, 0))
	if first.rank < 0 {
		return s.unknownRank(first.dt)
	}
	ax := normAxis(attrIntOr(n, "axis", 0), first.rank)
	t := &tinfo{dt: first.dt, rank: first.rank, dims: append([]dim(nil), first.dims...)}
	total := int64(0)
	allKnown := true
	var vals []dim
	valsOK := first.rank == 1
	for _, name := range n.GetInput() {
		x := s.get(name)
		if x.rank != first.rank {
			return s.unknownRank(first.dt)
		}
		if x.dims[ax].known() {
			total += x.dims[ax].n
		} else {
			allKnown = false
		}
		if x.val == nil {
			valsOK = false
		}
		vals = append(vals, x.val...)
		for i := range t.dims {
			if i != ax && !t.dims[i].known() && x.dims[i].known() {
				t.dims[i] = x.dims[i]
			}
		}
	}
	if allKnown {
		t.dims[ax] = known(total)
	} else if len(n.GetInput()) == 1 {
		t.dims[ax] = first.dims[ax]
	} else {
		t.dims[ax] = s.freshDim()
	}
	if valsOK {
		t.val = vals
	}
	return t
}

func (s *shapes) split(n *onnxpb.NodeProto) {
	x := s.get(input(n, 0))
	out := n.GetOutput()
	if x.rank < 0 {
		for _, o := range out {
			s.set(o, s.unknownRank(x.dt))
		}
		return
	}
	ax := normAxis(attrIntOr(n, "axis", 0), x.rank)
	sizes := make([]dim, len(out))
	if sp := input(n, 1); sp != "" && s.get(sp).val != nil && len(s.get(sp).val) == len(out) {
		copy(sizes, s.get(sp).val)
	} else if sp == "" && x.dims[ax].known() && x.dims[ax].n%int64(len(out)) == 0 {
		for i := range sizes {
			sizes[i] = known(x.dims[ax].n / int64(len(out)))
		}
	} else {
		for i := range sizes {
			sizes[i] = s.freshDim()
		}
	}
	for i, o := range out {
		t := &tinfo{dt: x.dt, rank: x.rank, dims: append([]dim(nil), x.dims...)}
		t.dims[ax] = sizes[i]
		s.set(o, t)
	}
}

// sliceParams reads a Slice node's constant starts, ends, axes and steps,
// normalised against the input's rank (axes non-negative, steps default 1).
func sliceParams(n *onnxpb.NodeProto, s *shapes, rank int) (starts, ends, axes, steps []int64, ok bool) {
	get := func(i int) ([]int64, bool) {
		name := input(n, i)
		if name == "" {
			return nil, true
		}
		v := s.get(name).val
		if v == nil {
			return nil, false
		}
		out := make([]int64, len(v))
		for j, d := range v {
			if !d.known() {
				return nil, false
			}
			out[j] = d.n
		}
		return out, true
	}
	var ok1, ok2, ok3, ok4 bool
	starts, ok1 = get(1)
	ends, ok2 = get(2)
	axes, ok3 = get(3)
	steps, ok4 = get(4)
	if !(ok1 && ok2 && ok3 && ok4) || len(starts) != len(ends) {
		return nil, nil, nil, nil, false
	}
	if axes == nil {
		for i := range starts {
			axes = append(axes, int64(i))
		}
	}
	if steps == nil {
		for range starts {
			steps = append(steps, 1)
		}
	}
	if len(axes) != len(starts) || len(steps) != len(starts) {
		return nil, nil, nil, nil, false
	}
	for i := range axes {
		axes[i] = int64(normAxis(axes[i], rank))
	}
	return starts, ends, axes, steps, true
}

// sliceRange returns the [begin, end) that Slice selects from a dimension of
// size d with step 1.
func sliceRange(start, end, d int64) (int64, int64) {
	if start < 0 {
		start += d
	}
	if end < 0 {
		end += d
	}
	start = min(max(start, 0), d)
	end = min(max(end, 0), d)
	return start, max(start, end)
}

func (s *shapes) slice(n *onnxpb.NodeProto) *tinfo {
	x := s.get(input(n, 0))
	if x.rank < 0 {
		return s.unknownRank(x.dt)
	}
	t := &tinfo{dt: x.dt, rank: x.rank, dims: append([]dim(nil), x.dims...)}
	starts, ends, axes, steps, ok := sliceParams(n, s, x.rank)
	if !ok {
		for i := range t.dims {
			t.dims[i] = s.freshDim()
		}
		return t
	}
	for i, a := range axes {
		d := x.dims[a]
		if d.known() && steps[i] == 1 {
			b, e := sliceRange(starts[i], ends[i], d.n)
			t.dims[a] = known(e - b)
			if x.rank == 1 && x.val != nil {
				t.val = x.val[b:e]
			}
		} else {
			t.dims[a] = s.freshDim()
		}
	}
	return t
}

func (s *shapes) gather(x, idx *tinfo, axis int64) *tinfo {
	if x.rank < 0 || idx.rank < 0 {
		return s.unknownRank(x.dt)
	}
	ax := normAxis(axis, x.rank)
	dims := append(append(append([]dim(nil), x.dims[:ax]...), idx.dims...), x.dims[ax+1:]...)
	t := &tinfo{dt: x.dt, rank: len(dims), dims: dims}
	if x.rank == 1 && x.val != nil && idx.val != nil {
		for _, i := range idx.val {
			if !i.known() {
				return t
			}
			j := i.n
			if j < 0 {
				j += int64(len(x.val))
			}
			if j < 0 || j >= int64(len(x.val)) {
				return t
			}
			t.val = append(t.val, x.val[j])
		}
	}
	return t
}

// squeezeAxes reads Squeeze/Unsqueeze axes (input 1 since opset 13).
func squeezeAxes(n *onnxpb.NodeProto, s *shapes) ([]int64, bool) {
	if a := getAttr(n, "axes"); a != nil {
		return a.GetInts(), true
	}
	if name := input(n, 1); name != "" {
		v := s.get(name).val
		out := make([]int64, len(v))
		for i, d := range v {
			if !d.known() {
				return nil, false
			}
			out[i] = d.n
		}
		return out, v != nil
	}
	return nil, true
}

func (s *shapes) squeeze(n *onnxpb.NodeProto, x *tinfo) *tinfo {
	axes, ok := squeezeAxes(n, s)
	if x.rank < 0 || !ok {
		return s.unknownRank(x.dt)
	}
	if n.GetOpType() == "Unsqueeze" {
		r := x.rank + len(axes)
		ins := make([]bool, r)
		for _, a := range axes {
			ins[normAxis(a, r)] = true
		}
		t := &tinfo{dt: x.dt, rank: r}
		j := 0
		for i := 0; i < r; i++ {
			if ins[i] {
				t.dims = append(t.dims, known(1))
			} else {
				t.dims = append(t.dims, x.dims[j])
				j++
			}
		}
		if x.rank == 0 && x.val != nil {
			t.val = x.val
		}
		return t
	}
	drop := make([]bool, x.rank)
	if len(axes) == 0 {
		for i, d := range x.dims {
			if !d.known() {
				return s.unknownRank(x.dt)
			}
			drop[i] = d.n == 1
		}
	}
	for _, a := range axes {
		drop[normAxis(a, x.rank)] = true
	}
	t := &tinfo{dt: x.dt}
	for i, d := range x.dims {
		if !drop[i] {
			t.dims = append(t.dims, d)
		}
	}
	t.rank = len(t.dims)
	if t.rank == 0 && x.val != nil {
		t.val = x.val
	}
	return t
}

func (s *shapes) conv(n *onnxpb.NodeProto, x, w *tinfo) *tinfo {
	if x.rank < 3 || w.rank != x.rank {
		return s.unknownRank(x.dt)
	}
	t := &tinfo{dt: x.dt, rank: x.rank, dims: []dim{x.dims[0], w.dims[0]}}
	ks := attrIntsOr(n, "kernel_shape", nil)
	st := attrIntsOr(n, "strides", nil)
	pads := attrIntsOr(n, "pads", nil)
	dil := attrIntsOr(n, "dilations", nil)
	sp := x.rank - 2
	for i := 0; i < sp; i++ {
		d := x.dims[2+i]
		k := w.dims[2+i]
		if ks != nil {
			k = known(ks[i])
		}
		stride, dl, pb, pe := int64(1), int64(1), int64(0), int64(0)
		if st != nil {
			stride = st[i]
		}
		if dil != nil {
			dl = dil[i]
		}
		if pads != nil {
			pb, pe = pads[i], pads[i+sp]
		}
		if d.known() && k.known() && attrString0(n, "auto_pad") {
			t.dims = append(t.dims, known((d.n+pb+pe-dl*(k.n-1)-1)/stride+1))
		} else {
			t.dims = append(t.dims, s.freshDim())
		}
	}
	return t
}

// attrString0 is true when the auto_pad attribute is absent or NOTSET.
func attrString0(n *onnxpb.NodeProto, name string) bool {
	a := getAttr(n, name)
	return a == nil || string(a.GetS()) == "" || string(a.GetS()) == "NOTSET"
}
