package grad

import (
	"fmt"

	"github.com/cl-dev/cl/models/onnxpb"
)

// rctx is what a rule sees: the forward node, the shape facts, which inputs
// need a gradient, and the emitter that appends backward nodes.
type rctx struct {
	e    *emitter
	s    *shapes
	n    *onnxpb.NodeProto
	need []bool
}

// A rule maps the gradients of a node's outputs (gy[i] == "" when output i
// gets none) to the gradients of its inputs (result[j], "" or absent when
// input j needs none, i.e. !c.need[j]). Each input gradient has the shape
// of its input. A rule may emit only standard opset-17 operators, and should
// reference forward tensors only for the inputs that need a gradient.
type rule func(c *rctx, gy []string) ([]string, error)

// rules maps operator types (standard domain) to their rule.
var rules = map[string]rule{}

func register(r rule, ops ...string) {
	for _, op := range ops {
		rules[op] = r
	}
}

func (c *rctx) in(i int) string                            { return input(c.n, i) }
func (c *rctx) out(i int) string                           { return c.n.GetOutput()[i] }
func (c *rctx) inInfo(i int) *tinfo                        { return c.s.get(c.in(i)) }
func (c *rctx) outInfo(i int) *tinfo                       { return c.s.get(c.out(i)) }
func (c *rctx) dt() int32                                  { return c.outInfo(0).dt }
func (c *rctx) op(t string, a []attr, in ...string) string { return c.e.op(t, a, in...) }
func (c *rctx) scalar(v float64) string                    { return c.e.scalar(v, c.dtOrFloat()) }

func (c *rctx) dtOrFloat() int32 {
	if dt := c.dt(); dt == tDouble {
		return dt
	}
	return tFloat
}

// rank returns the known rank of input i or an error.
func (c *rctx) rank(i int) (int, error) {
	r := c.inInfo(i).rank
	if r < 0 {
		return 0, fmt.Errorf("the rank of input %q is unknown (shape inference could not follow it)", c.in(i))
	}
	return r, nil
}

// grads allocates the result slice.
func (c *rctx) grads() []string { return make([]string, len(c.n.GetInput())) }

// shapeOf returns a tensor holding x's shape: a constant when all dims are
// known, else Shape(x).
func (c *rctx) shapeOf(x string) string {
	if d, ok := c.s.get(x).staticDims(); ok {
		return c.e.i64(d...)
	}
	return c.e.shape(x)
}

// unbroadcast reduces g, of shape gi (the broadcast shape), to the shape of
// the tensor x: ReduceSum over the broadcast axes, then drop the leading
// ones. Axes are found from the inferred shapes when possible, else at run
// time from Shape(g) and Shape(x).
func (c *rctx) unbroadcast(g string, gi *tinfo, x string) (string, error) {
	xi := c.s.get(x)
	if gi.rank < 0 || xi.rank < 0 {
		return "", fmt.Errorf("cannot reduce the gradient to %q: rank unknown", x)
	}
	d := gi.rank - xi.rank
	if d < 0 {
		return "", fmt.Errorf("gradient of rank %d is smaller than input %q of rank %d", gi.rank, x, xi.rank)
	}
	var axes []int64
	static := true
	for i := 0; i < gi.rank; i++ {
		if i < d {
			axes = append(axes, int64(i))
			continue
		}
		gd, xd := gi.dims[i], xi.dims[i-d]
		switch {
		case gd == xd:
		case xd.known() && xd.n == 1:
			axes = append(axes, int64(i))
		case xd.known() && !gd.known():
			// broadcasting makes the output dimension xd (xd ≠ 1)
		default:
			static = false
		}
	}
	if static {
		r := g
		if len(axes) > 0 {
			r = c.op("ReduceSum", []attr{attrInt("keepdims", 1)}, g, c.e.i64(axes...))
		}
		if d > 0 {
			lead := make([]int64, d)
			for i := range lead {
				lead[i] = int64(i)
			}
			r = c.op("Squeeze", nil, r, c.e.i64(lead...))
		}
		return r, nil
	}
	// Run time: axes where Shape(x), padded with ones on the left, differs
	// from Shape(g).
	sx := c.e.shape(x)
	sxp := sx
	if d > 0 {
		ones := make([]int64, d)
		for i := range ones {
			ones[i] = 1
		}
		sxp = c.op("Concat", []attr{attrInt("axis", 0)}, c.e.i64(ones...), sx)
	}
	diff := c.op("Not", nil, c.op("Equal", nil, sxp, c.e.shape(g)))
	ax := c.op("Reshape", nil, c.op("NonZero", nil, diff), c.e.i64(-1))
	r := c.op("ReduceSum", []attr{attrInt("keepdims", 1), attrInt("noop_with_empty_axes", 1)}, g, ax)
	return c.op("Reshape", nil, r, sx), nil
}

// unbroadcastAll applies unbroadcast to every needed input, with g of the
// output's shape.
func (c *rctx) unbroadcastAll(gx []string) ([]string, error) {
	yi := c.outInfo(0)
	for j, g := range gx {
		if g == "" || !c.need[j] {
			gx[j] = ""
			continue
		}
		r, err := c.unbroadcast(g, yi, c.in(j))
		if err != nil {
			return nil, err
		}
		gx[j] = r
	}
	return gx, nil
}
