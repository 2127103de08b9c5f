package grad

import "github.com/cl-dev/cl/models/onnxpb"

// Shape inference of the operators with structure (matrix products,
// reductions, reshapes, concatenation, slicing, gathering, convolution).

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
