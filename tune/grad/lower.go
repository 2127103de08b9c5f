package grad

import (
	"fmt"
	"math"

	"github.com/cl-dev/cl/models/onnxpb"
)

// lowerContrib rewrites the com.microsoft operators models/vit can emit into
// standard ones before differentiation, so the training graph stays in the
// standard domain: MultiHeadAttention(q, k, v) becomes the attention of
// standard MatMul and Softmax operators. Any other non-standard operator is
// an error naming it and its node.
func lowerContrib(g *onnxpb.GraphProto) error {
	has := false
	for _, n := range g.GetNode() {
		if d := n.GetDomain(); d != "" && d != "ai.onnx" {
			has = true
		}
	}
	if !has {
		return nil
	}
	s := inferGraph(g)
	e := newEmitter(g, "lower_")
	var out []*onnxpb.NodeProto
	for _, n := range g.Node {
		d := n.GetDomain()
		if d == "" || d == "ai.onnx" {
			out = append(out, n)
			continue
		}
		if d != "com.microsoft" || n.GetOpType() != "MultiHeadAttention" || len(n.GetInput()) != 3 || len(n.GetOutput()) != 1 {
			hint := ""
			if n.GetOpType() == "DynamicQuantizeMatMul" {
				hint = " (int8 graphs cannot be trained: import the model without --quantize)"
			}
			return fmt.Errorf("grad: operator %s (node %q) is not a standard ONNX operator and has no gradient rule%s",
				opName(n), n.GetName(), hint)
		}
		saved := g.Node
		g.Node = nil
		if err := lowerMHA(e, s, n); err != nil {
			g.Node = saved
			return err
		}
		out = append(out, g.Node...)
		g.Node = saved
	}
	g.Node = out
	return nil
}

// lowerMHA emits softmax(q_h·k_hᵀ·scale)·v_h per head, heads merged back,
// writing n's output.
func lowerMHA(e *emitter, s *shapes, n *onnxpb.NodeProto) error {
	H := attrIntOr(n, "num_heads", 0)
	if H <= 0 {
		return fmt.Errorf("grad: MultiHeadAttention (node %q) has no num_heads", n.GetName())
	}
	q, k, v := n.Input[0], n.Input[1], n.Input[2]
	qi := s.get(q)
	dt := qi.dt
	if dt == 0 {
		dt = tFloat
	}
	scale := float64(attrFloatOr(n, "scale", 0))
	if scale == 0 {
		if qi.rank != 3 || !qi.dims[2].known() {
			return fmt.Errorf("grad: MultiHeadAttention (node %q): query width unknown, set the scale attribute", n.GetName())
		}
		scale = 1 / math.Sqrt(float64(qi.dims[2].n/H))
	}
	heads := func(x string) string {
		return e.op("Transpose", []attr{attrInts("perm", 0, 2, 1, 3)}, e.op("Reshape", nil, x, e.i64(0, 0, H, -1)))
	}
	qh, kh, vh := heads(q), heads(k), heads(v)
	kt := e.op("Transpose", []attr{attrInts("perm", 0, 1, 3, 2)}, kh)
	a := e.op("Softmax", []attr{attrInt("axis", -1)}, e.op("Mul", nil, e.op("MatMul", nil, qh, kt), e.scalar(scale, dt)))
	o := e.op("Transpose", []attr{attrInts("perm", 0, 2, 1, 3)}, e.op("MatMul", nil, a, vh))
	last := e.op("Reshape", nil, o, e.i64(0, 0, -1))
	e.g.Node[len(e.g.Node)-1].Output[0] = n.Output[0]
	_ = last
	return nil
}
