package grad

import "fmt"

// Operators that move data without arithmetic.

func init() {
	register(ruleReshape, "Reshape", "Flatten", "Squeeze", "Unsqueeze")
	register(ruleTranspose, "Transpose")
	register(ruleConcat, "Concat")
	register(ruleSplit, "Split")
	register(ruleSlice, "Slice")
	register(ruleGather, "Gather")
	register(ruleGatherElements, "GatherElements")
	register(ruleExpand, "Expand")
}

// Reshape and friends: g reshaped to the input's shape.
func ruleReshape(c *rctx, gy []string) ([]string, error) {
	gx := c.grads()
	if c.need[0] {
		gx[0] = c.op("Reshape", nil, gy[0], c.shapeOf(c.in(0)))
	}
	return gx, nil
}

// Transpose: g with the inverse permutation.
func ruleTranspose(c *rctx, gy []string) ([]string, error) {
	gx := c.grads()
	if !c.need[0] {
		return gx, nil
	}
	r, err := c.rank(0)
	if err != nil {
		return nil, err
	}
	perm := attrIntsOr(c.n, "perm", nil)
	if perm == nil {
		perm = rangeAxes(0, r)
		for i := range perm {
			perm[i] = int64(r - 1 - i)
		}
	}
	inv := make([]int64, len(perm))
	for i, p := range perm {
		inv[p] = int64(i)
	}
	gx[0] = c.op("Transpose", []attr{attrInts("perm", inv...)}, gy[0])
	return gx, nil
}

// Concat: each input's part of g (one Slice when one input needs it, one
// Split when several do).
func ruleConcat(c *rctx, gy []string) ([]string, error) {
	gx := c.grads()
	r, err := c.rank(0)
	if err != nil {
		return nil, err
	}
	ax := int64(normAxis(attrIntOr(c.n, "axis", 0), r))
	nNeed := 0
	sizes := make([]string, len(c.n.GetInput())) // [1] int64 tensors
	static := make([]int64, len(sizes))
	allStatic := true
	for j := range sizes {
		d := c.inInfo(j).dims[ax]
		if d.known() {
			static[j] = d.n
			sizes[j] = c.e.i64(d.n)
		} else {
			allStatic = false
			sizes[j] = c.op("Slice", nil, c.e.shape(c.in(j)), c.e.i64(ax), c.e.i64(ax+1))
		}
		if c.need[j] {
			nNeed++
		}
	}
	if nNeed == 0 {
		return gx, nil
	}
	if nNeed > 1 {
		split := ""
		if allStatic {
			split = c.e.i64(static...)
		} else {
			split = c.op("Concat", []attr{attrInt("axis", 0)}, sizes...)
		}
		outs := c.e.opN("Split", []attr{attrInt("axis", ax)}, len(sizes), gy[0], split)
		for j := range gx {
			if c.need[j] {
				gx[j] = outs[j]
			}
		}
		return gx, nil
	}
	for j := range gx {
		if !c.need[j] {
			continue
		}
		if allStatic {
			off := int64(0)
			for _, s := range static[:j] {
				off += s
			}
			gx[j] = c.op("Slice", nil, gy[0], c.e.i64(off), c.e.i64(off+static[j]), c.e.i64(ax))
		} else {
			off := c.e.i64(0)
			if j > 0 {
				off = c.op("ReduceSum", []attr{attrInt("keepdims", 1)}, c.op("Concat", []attr{attrInt("axis", 0)}, sizes[:j]...))
			}
			gx[j] = c.op("Slice", nil, gy[0], off, c.op("Add", nil, off, sizes[j]), c.e.i64(ax))
		}
	}
	return gx, nil
}

// Split: the outputs' gradients concatenated (zeros for outputs without).
func ruleSplit(c *rctx, gy []string) ([]string, error) {
	gx := c.grads()
	if !c.need[0] {
		return gx, nil
	}
	r, err := c.rank(0)
	if err != nil {
		return nil, err
	}
	parts := make([]string, len(gy))
	for i, g := range gy {
		if g == "" {
			g = c.e.zerosLike(c.out(i), c.dtOrFloat())
		}
		parts[i] = g
	}
	gx[0] = c.op("Concat", []attr{attrInt("axis", int64(normAxis(attrIntOr(c.n, "axis", 0), r)))}, parts...)
	return gx, nil
}

// Slice (step 1, sizes known along the sliced axes): g padded with zeros.
func ruleSlice(c *rctx, gy []string) ([]string, error) {
	gx := c.grads()
	if !c.need[0] {
		return gx, nil
	}
	r, err := c.rank(0)
	if err != nil {
		return nil, err
	}
	starts, ends, axes, steps, ok := sliceParams(c.n, c.s, r)
	if !ok {
		return nil, fmt.Errorf("starts, ends, axes and steps must be constants")
	}
	xi := c.inInfo(0)
	pads := make([]int64, 2*r)
	for i, a := range axes {
		if steps[i] != 1 {
			return nil, fmt.Errorf("only step 1 is supported (axis %d has step %d)", a, steps[i])
		}
		d := xi.dims[a]
		if !d.known() {
			return nil, fmt.Errorf("the size of input %q along sliced axis %d must be known", c.in(0), a)
		}
		b, e := sliceRange(starts[i], ends[i], d.n)
		pads[a] += b
		pads[int64(r)+a] += d.n - e
	}
	gx[0] = c.op("Pad", nil, gy[0], c.e.i64(pads...))
	return gx, nil
}

// Gather: a constant scalar index along an axis of known size puts g back
// with Pad, or with one Concat when every index of the axis is gathered;
// other indices scatter-add g into zeros (ScatterElements with
// reduction add, so repeated indices accumulate).
func ruleGather(c *rctx, gy []string) ([]string, error) {
	gx := c.grads()
	if !c.need[0] {
		return gx, nil
	}
	r, err := c.rank(0)
	if err != nil {
		return nil, err
	}
	ii := c.inInfo(1)
	if ii.rank < 0 {
		return nil, fmt.Errorf("the rank of the indices %q is unknown", c.in(1))
	}
	ax := int64(normAxis(attrIntOr(c.n, "axis", 0), r))
	d := c.inInfo(0).dims[ax]
	g := gy[0]
	if ii.rank == 0 && len(ii.val) == 1 && ii.val[0].known() && d.known() {
		i := ii.val[0].n
		if i < 0 {
			i += d.n
		}
		// A piece: padded (or concatenated with its siblings) when the
		// contributions are summed (emitter.accumulate).
		gx[0] = c.op("Unsqueeze", nil, g, c.e.i64(ax))
		c.e.pieces[gx[0]] = piece{axis: int(ax), rank: r, index: i, size: d.n}
		return gx, nil
	}
	// General: flatten the index dims of g into one axis, broadcast the
	// indices to g's shape, scatter-add.
	idx := c.op("Reshape", nil, c.in(1), c.e.i64(-1))
	if ii.rank != 1 {
		sg := c.e.shape(g)
		parts := []string{}
		if ax > 0 {
			parts = append(parts, c.op("Slice", nil, sg, c.e.i64(0), c.e.i64(ax)))
		}
		parts = append(parts, c.e.i64(-1))
		parts = append(parts, c.op("Slice", nil, sg, c.e.i64(ax+int64(ii.rank)), c.e.i64(1<<62)))
		g = c.op("Reshape", nil, g, c.op("Concat", []attr{attrInt("axis", 0)}, parts...))
	}
	ones := make([]int64, r)
	for i := range ones {
		ones[i] = 1
	}
	ones[ax] = -1
	idxB := c.op("Expand", nil, c.op("Reshape", nil, idx, c.e.i64(ones...)), c.e.shape(g))
	gx[0] = c.op("ScatterElements", []attr{attrInt("axis", ax), attrString("reduction", "add")},
		c.e.zerosLike(c.in(0), c.dtOrFloat()), idxB, g)
	return gx, nil
}

// GatherElements: g scatter-added into zeros of the data's shape.
func ruleGatherElements(c *rctx, gy []string) ([]string, error) {
	gx := c.grads()
	if c.need[0] {
		gx[0] = c.op("ScatterElements", []attr{attrInt("axis", attrIntOr(c.n, "axis", 0)), attrString("reduction", "add")},
			c.e.zerosLike(c.in(0), c.dtOrFloat()), c.in(1), gy[0])
	}
	return gx, nil
}

// Expand: g summed over the broadcast axes.
func ruleExpand(c *rctx, gy []string) ([]string, error) {
	gx := c.grads()
	if c.need[0] {
		var err error
		if gx[0], err = c.unbroadcast(gy[0], c.outInfo(0), c.in(0)); err != nil {
			return nil, err
		}
	}
	return gx, nil
}
