package grad

import (
	"fmt"
)

func init() {
	register(ruleLayerNorm, "LayerNormalization")
	register(ruleSoftmax, "Softmax")
	register(ruleLogSoftmax, "LogSoftmax")
	register(ruleReduce, "ReduceSum", "ReduceMean")
}

func rangeAxes(from, to int) []int64 {
	var v []int64
	for i := from; i < to; i++ {
		v = append(v, int64(i))
	}
	return v
}

// LayerNormalization over the axes [axis, rank): with x̂ = (x − mean)·invstd
// from the forward node's own Mean and InvStdDev outputs (added to the node
// when absent) and gγ = g·γ:
//
//	g_x = invstd·(gγ − mean(gγ) − x̂·mean(gγ·x̂)),  g_γ = Σ g·x̂,  g_β = Σ g
//
// with the sums over the non-normalised axes.
func ruleLayerNorm(c *rctx, gy []string) ([]string, error) {
	r, err := c.rank(0)
	if err != nil {
		return nil, err
	}
	ax := normAxis(attrIntOr(c.n, "axis", -1), r)
	if ax < 0 || ax >= r {
		return nil, fmt.Errorf("axis %d out of range for rank %d", ax, r)
	}
	n := c.n
	for len(n.Output) < 3 {
		n.Output = append(n.Output, "")
	}
	stat := c.s.get(n.Output[0])
	st := &tinfo{dt: tFloat, rank: r, dims: append([]dim(nil), stat.dims...)}
	if attrIntOr(n, "stash_type", 1) != 1 {
		st.dt = c.dt()
	}
	for i := ax; i < r; i++ {
		st.dims[i] = known(1)
	}
	for i := 1; i < 3; i++ {
		if n.Output[i] == "" {
			n.Output[i] = c.e.fresh(map[int]string{1: "ln_mean", 2: "ln_invstd"}[i])
			c.s.set(n.Output[i], st)
		}
	}
	mean, inv := n.Output[1], n.Output[2]
	if st.dt != c.dt() {
		mean = c.op("Cast", []attr{attrInt("to", int64(c.dt()))}, mean)
		inv = c.op("Cast", []attr{attrInt("to", int64(c.dt()))}, inv)
	}
	g := gy[0]
	xhat := c.op("Mul", nil, c.op("Sub", nil, c.in(0), mean), inv)
	gx := c.grads()
	norm := rangeAxes(ax, r)
	if c.need[0] {
		gg := c.op("Mul", nil, g, c.in(1))
		m1 := c.op("ReduceMean", []attr{attrInts("axes", norm...), attrInt("keepdims", 1)}, gg)
		m2 := c.op("ReduceMean", []attr{attrInts("axes", norm...), attrInt("keepdims", 1)}, c.op("Mul", nil, gg, xhat))
		gx[0] = c.op("Mul", nil, inv, c.op("Sub", nil, c.op("Sub", nil, gg, m1), c.op("Mul", nil, xhat, m2)))
	}
	if c.need[1] {
		if gx[1], err = c.unbroadcast(c.op("Mul", nil, g, xhat), c.outInfo(0), c.in(1)); err != nil {
			return nil, err
		}
	}
	if len(c.need) > 2 && c.need[2] {
		if gx[2], err = c.unbroadcast(g, c.outInfo(0), c.in(2)); err != nil {
			return nil, err
		}
	}
	return gx, nil
}

// Softmax: y·(g − Σ g·y) along the axis.
func ruleSoftmax(c *rctx, gy []string) ([]string, error) {
	gx := c.grads()
	if !c.need[0] {
		return gx, nil
	}
	ax := attrIntOr(c.n, "axis", -1)
	g, y := gy[0], c.out(0)
	s := c.op("ReduceSum", []attr{attrInt("keepdims", 1)}, c.op("Mul", nil, g, y), c.e.i64(ax))
	gx[0] = c.op("Mul", nil, y, c.op("Sub", nil, g, s))
	return gx, nil
}

// LogSoftmax: g − exp(y)·Σ g along the axis.
func ruleLogSoftmax(c *rctx, gy []string) ([]string, error) {
	gx := c.grads()
	if !c.need[0] {
		return gx, nil
	}
	ax := attrIntOr(c.n, "axis", -1)
	g, y := gy[0], c.out(0)
	s := c.op("ReduceSum", []attr{attrInt("keepdims", 1)}, g, c.e.i64(ax))
	gx[0] = c.op("Sub", nil, g, c.op("Mul", nil, c.op("Exp", nil, y), s))
	return gx, nil
}

// ReduceSum, ReduceMean (constant axes): g put back on the reduced axes and
// expanded to the input's shape (÷ count for the mean).
func ruleReduce(c *rctx, gy []string) ([]string, error) {
	gx := c.grads()
	if !c.need[0] {
		return gx, nil
	}
	r, err := c.rank(0)
	if err != nil {
		return nil, err
	}
	axes, ok := reduceAxes(c.n, c.s)
	if !ok {
		return nil, fmt.Errorf("the axes are not constant")
	}
	keep := attrIntOr(c.n, "keepdims", 1) == 1
	noop := attrIntOr(c.n, "noop_with_empty_axes", 0) == 1
	g := gy[0]
	if len(axes) == 0 && noop {
		gx[0] = g
		return gx, nil
	}
	if len(axes) == 0 {
		axes = rangeAxes(0, r)
	}
	norm := make([]int64, len(axes))
	for i, a := range axes {
		norm[i] = int64(normAxis(a, r))
	}
	if !keep {
		g = c.op("Unsqueeze", nil, g, c.e.i64(sortedInts(norm)...))
	}
	g = c.op("Expand", nil, g, c.shapeOf(c.in(0)))
	if c.n.GetOpType() == "ReduceMean" {
		xi := c.inInfo(0)
		count := int64(1)
		for _, a := range norm {
			if d := xi.dims[a]; d.known() && count > 0 {
				count *= d.n
			} else {
				count = -1
			}
		}
		var inv string
		if count > 0 {
			inv = c.scalar(1 / float64(count))
		} else {
			to := []attr{attrInt("to", int64(c.dtOrFloat()))}
			inv = c.op("Div", nil, c.op("Cast", to, c.op("Size", nil, c.out(0))), c.op("Cast", to, c.op("Size", nil, c.in(0))))
		}
		g = c.op("Mul", nil, g, inv)
	}
	gx[0] = g
	return gx, nil
}

func sortedInts(v []int64) []int64 {
	out := append([]int64(nil), v...)
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}
