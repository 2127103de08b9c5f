package grad

import (
	"math"
	"sort"

	"google.golang.org/protobuf/proto"

	"github.com/cl-dev/cl/models/onnxpb"
)

// Composite rules: operator patterns whose gradient is cheaper, and keeps
// fewer forward tensors, as a whole than node by node.

// geluOp is the internal name of the erf GELU pattern's rule (never emitted).
const geluOp = "_Gelu"

// matMulBTOp is the internal name of MatMul(a, Transpose(b)) with the last
// two axes of b swapped (attention's q·kᵀ): y = a·bᵀ (never emitted).
const matMulBTOp = "_MatMulBT"

func init() {
	register(ruleGelu, geluOp)
	register(ruleMatMulBT, matMulBTOp)
}

// sweepNodes returns the nodes of the reverse sweep: the graph's nodes with
// each erf GELU pattern 0.5·x·(1 + erf(x/√2)) (models/vit's form: Div, Erf,
// Add, Mul, Mul, inner tensors read by nothing else) replaced by one
// internal _Gelu node reading x. Its gradient keeps only x, and the forward
// nodes stay untouched, free for ONNX Runtime to fuse into one Gelu kernel.
// Likewise MatMul(a, Transpose(b)) with the Transpose swapping the last two
// axes and read by nothing else becomes one _MatMulBT node reading a and b:
// its gradients are products with b and gᵀ, whose transposes ONNX Runtime
// folds into its matrix product, instead of a product giving g_bᵀ followed
// by a materialised Transpose of it.
func sweepNodes(g *onnxpb.GraphProto, s *shapes, keep map[string]bool) []*onnxpb.NodeProto {
	nodes := g.GetNode()
	producer := map[string]*onnxpb.NodeProto{}
	uses := map[string]int{}
	for _, n := range nodes {
		for _, o := range n.GetOutput() {
			producer[o] = n
		}
		for _, in := range n.GetInput() {
			uses[in]++
		}
	}
	for _, o := range g.GetOutput() {
		uses[o.GetName()]++
	}
	for k := range keep {
		uses[k]++
	}
	isConst := func(name string, v float64) bool {
		f := s.get(name).fval
		return len(f) == 1 && math.Abs(f[0]-v) < 1e-6*math.Max(1, math.Abs(v))
	}
	skip := map[*onnxpb.NodeProto]bool{}
	repl := map[*onnxpb.NodeProto]*onnxpb.NodeProto{}
	for _, last := range nodes {
		// last = Mul(m, 0.5), m = Mul(x, a), a = Add(e, 1), e = Erf(d), d = Div(x, √2)
		if last.GetOpType() != "Mul" || last.GetDomain() != "" || len(last.Input) != 2 {
			continue
		}
		var m *onnxpb.NodeProto
		for i := 0; i < 2 && m == nil; i++ {
			if p := producer[last.Input[i]]; p != nil && p.GetOpType() == "Mul" && isConst(last.Input[1-i], 0.5) {
				m = p
			}
		}
		if m == nil || uses[m.Output[0]] != 1 || len(m.Input) != 2 {
			continue
		}
		for i := 0; i < 2; i++ {
			x := m.Input[i]
			a := producer[m.Input[1-i]]
			if a == nil || a.GetOpType() != "Add" || uses[a.Output[0]] != 1 {
				continue
			}
			var e *onnxpb.NodeProto
			for j := 0; j < 2 && e == nil; j++ {
				if p := producer[a.Input[j]]; p != nil && p.GetOpType() == "Erf" && isConst(a.Input[1-j], 1) {
					e = p
				}
			}
			if e == nil || uses[e.Output[0]] != 1 {
				continue
			}
			d := producer[e.Input[0]]
			if d == nil || d.GetOpType() != "Div" || uses[d.Output[0]] != 1 || d.Input[0] != x || !isConst(d.Input[1], math.Sqrt2) {
				continue
			}
			skip[d], skip[e], skip[a], skip[m] = true, true, true, true
			repl[last] = &onnxpb.NodeProto{OpType: proto.String(geluOp), Name: proto.String(last.GetName()),
				Input: []string{x}, Output: []string{last.Output[0]}}
			break
		}
	}
	for _, mm := range nodes {
		if mm.GetOpType() != "MatMul" || mm.GetDomain() != "" || len(mm.Input) != 2 {
			continue
		}
		t := producer[mm.Input[1]]
		if t == nil || t.GetOpType() != "Transpose" || t.GetDomain() != "" || uses[t.Output[0]] != 1 || skip[t] {
			continue
		}
		if r := s.get(t.Input[0]).rank; r < 2 || !swapsLast2(attrIntsOr(t, "perm", nil), r) {
			continue
		}
		skip[t] = true
		repl[mm] = &onnxpb.NodeProto{OpType: proto.String(matMulBTOp), Name: proto.String(mm.GetName()),
			Input: []string{mm.Input[0], t.Input[0]}, Output: []string{mm.Output[0]}}
	}
	out := make([]*onnxpb.NodeProto, 0, len(nodes))
	for _, n := range nodes {
		switch {
		case skip[n]:
		case repl[n] != nil:
			out = append(out, repl[n])
		default:
			out = append(out, n)
		}
	}
	return out
}

// swapsLast2 reports whether perm (nil: the default, all axes reversed)
// swaps the last two of r axes and keeps the others.
func swapsLast2(perm []int64, r int) bool {
	if perm == nil {
		return r == 2
	}
	if len(perm) != r {
		return false
	}
	for i, p := range perm {
		want := int64(i)
		switch i {
		case r - 2:
			want = int64(r - 1)
		case r - 1:
			want = int64(r - 2)
		}
		if p != want {
			return false
		}
	}
	return true
}

// ruleGelu: g·(Φ(x) + x·φ(x)) with Φ(x) = (1 + erf(x/√2))/2 and
// φ(x) = exp(−x²/2)/√(2π), recomputed from x.
func ruleGelu(c *rctx, gy []string) ([]string, error) {
	gx := c.grads()
	if !c.need[0] {
		return gx, nil
	}
	x := c.in(0)
	// x·(1/√2), not the forward's x/√2: ONNX Runtime would merge equal
	// subexpressions, and a backward read of the forward's erf would stop it
	// fusing the forward pattern into one Gelu kernel.
	cdf := c.op("Mul", nil, c.op("Add", nil, c.op("Erf", nil, c.op("Mul", nil, x, c.scalar(1/math.Sqrt2))), c.scalar(1)), c.scalar(0.5))
	pdf := c.op("Mul", nil, c.op("Exp", nil, c.op("Mul", nil, c.op("Mul", nil, x, x), c.scalar(-0.5))), c.scalar(1/math.Sqrt(2*math.Pi)))
	gx[0] = c.op("Mul", nil, gy[0], c.op("Add", nil, cdf, c.op("Mul", nil, x, pdf)))
	return gx, nil
}

// piece is a Gather gradient not yet padded to the data's shape: g with the
// gathered axis put back (size 1) at position index of an axis of size size.
type piece struct {
	axis, rank  int
	index, size int64
}

// accumulate sums the gradient contributions of one tensor. When they are
// all pieces of one axis with every index exactly once (the q, k, v gathers
// of an attention, the per-layer gathers of a parameter stack) they are
// concatenated in index order; other pieces are padded first.
func (e *emitter) accumulate(cs []string) string {
	if len(cs) > 1 {
		p0, ok := e.pieces[cs[0]]
		byIndex := map[int64]string{}
		for _, c := range cs {
			p, isPiece := e.pieces[c]
			if !isPiece || p.axis != p0.axis || p.size != p0.size {
				ok = false
				break
			}
			if _, dup := byIndex[p.index]; dup {
				ok = false
				break
			}
			byIndex[p.index] = c
		}
		if ok && int64(len(byIndex)) == p0.size {
			idx := make([]int64, 0, len(byIndex))
			for i := range byIndex {
				idx = append(idx, i)
			}
			sort.Slice(idx, func(a, b int) bool { return idx[a] < idx[b] })
			parts := make([]string, len(idx))
			for i, k := range idx {
				parts[i] = byIndex[k]
			}
			return e.op("Concat", []attr{attrInt("axis", int64(p0.axis))}, parts...)
		}
	}
	padded := make([]string, len(cs))
	for i, c := range cs {
		padded[i] = e.materialize(c)
	}
	return e.sum(padded)
}

// materialize pads a piece to the data's shape (other names unchanged).
func (e *emitter) materialize(c string) string {
	p, ok := e.pieces[c]
	if !ok || p.size == 1 {
		return c
	}
	pads := make([]int64, 2*p.rank)
	pads[p.axis], pads[p.rank+p.axis] = p.index, p.size-1-p.index
	return e.op("Pad", nil, c, e.i64(pads...))
}
