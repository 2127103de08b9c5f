package grad

import "fmt"

func init() {
	register(ruleMatMul, "MatMul")
	register(ruleGemm, "Gemm")
}

// MatMul y = a·b (batched, broadcasting over leading axes; both operands of
// rank ≥ 2): g_a = g·bᵀ, g_b = aᵀ·g, each reduced over the batch axes it was
// broadcast along. A 2-D b with a batched a (a Linear layer) gets its
// gradient as one matrix product over the flattened rows.
func ruleMatMul(c *rctx, gy []string) ([]string, error) {
	ra, err := c.rank(0)
	if err != nil {
		return nil, err
	}
	rb, err := c.rank(1)
	if err != nil {
		return nil, err
	}
	if ra < 2 || rb < 2 {
		return nil, fmt.Errorf("MatMul gradients need operands of rank ≥ 2 (got %d and %d)", ra, rb)
	}
	g := gy[0]
	yi := c.outInfo(0)
	ai, bi := c.inInfo(0), c.inInfo(1)
	gx := c.grads()
	if c.need[0] {
		if rb == 2 && ra > 2 {
			// g·bᵀ broadcasts b: a plain batched product, shape of a.
			gx[0] = c.op("MatMul", nil, g, c.op("Transpose", []attr{attrInts("perm", 1, 0)}, c.in(1)))
		} else {
			ga := c.op("MatMul", nil, g, c.e.transposeLast2(c.in(1), rb))
			gi := &tinfo{dt: yi.dt, rank: yi.rank, dims: append(append([]dim(nil), yi.dims[:yi.rank-2]...), ai.dims[ra-2:]...)}
			if gx[0], err = c.unbroadcast(ga, gi, c.in(0)); err != nil {
				return nil, err
			}
		}
	}
	if c.need[1] {
		k, n := ai.dims[ra-1], bi.dims[1]
		if rb == 2 && ra > 2 && k.known() && n.known() {
			a2 := c.op("Reshape", nil, c.in(0), c.e.i64(-1, k.n))
			g2 := c.op("Reshape", nil, g, c.e.i64(-1, n.n))
			gx[1] = c.op("Gemm", []attr{attrInt("transA", 1)}, a2, g2)
		} else {
			gb := c.op("MatMul", nil, c.e.transposeLast2(c.in(0), ra), g)
			gi := &tinfo{dt: yi.dt, rank: yi.rank, dims: append(append([]dim(nil), yi.dims[:yi.rank-2]...), bi.dims[rb-2:]...)}
			if gx[1], err = c.unbroadcast(gb, gi, c.in(1)); err != nil {
				return nil, err
			}
		}
	}
	return gx, nil
}

// _MatMulBT y = a·bᵀ (bᵀ: b with its last two axes swapped; both of rank
// ≥ 2, broadcasting over leading axes): g_a = g·b, g_b = gᵀ·a, each reduced
// over the batch axes it was broadcast along. A 2-D b with a batched a gets
// its gradient as one matrix product over the flattened rows.
func ruleMatMulBT(c *rctx, gy []string) ([]string, error) {
	ra, err := c.rank(0)
	if err != nil {
		return nil, err
	}
	rb, err := c.rank(1)
	if err != nil {
		return nil, err
	}
	if ra < 2 || rb < 2 {
		return nil, fmt.Errorf("MatMul gradients need operands of rank ≥ 2 (got %d and %d)", ra, rb)
	}
	g := gy[0]
	yi := c.outInfo(0)
	ai, bi := c.inInfo(0), c.inInfo(1)
	gx := c.grads()
	if c.need[0] {
		ga := c.op("MatMul", nil, g, c.in(1))
		gi := &tinfo{dt: yi.dt, rank: yi.rank, dims: append(append([]dim(nil), yi.dims[:yi.rank-2]...), ai.dims[ra-2:]...)}
		if gx[0], err = c.unbroadcast(ga, gi, c.in(0)); err != nil {
			return nil, err
		}
	}
	if c.need[1] {
		k, n := ai.dims[ra-1], bi.dims[0]
		if rb == 2 && ra > 2 && k.known() && n.known() {
			a2 := c.op("Reshape", nil, c.in(0), c.e.i64(-1, k.n))
			g2 := c.op("Reshape", nil, g, c.e.i64(-1, n.n))
			gx[1] = c.op("Gemm", []attr{attrInt("transA", 1)}, g2, a2)
		} else {
			gb := c.op("MatMul", nil, c.e.transposeLast2(g, yi.rank), c.in(0))
			gi := &tinfo{dt: yi.dt, rank: yi.rank, dims: append(append([]dim(nil), yi.dims[:yi.rank-2]...), bi.dims[rb-2:]...)}
			if gx[1], err = c.unbroadcast(gb, gi, c.in(1)); err != nil {
				return nil, err
			}
		}
	}
	return gx, nil
}

// Gemm y = α·A'·B' + β·C with A' = transA ? Aᵀ : A (B' likewise).
func ruleGemm(c *rctx, gy []string) ([]string, error) {
	g := gy[0]
	alpha := attrFloatOr(c.n, "alpha", 1)
	beta := attrFloatOr(c.n, "beta", 1)
	ta := attrIntOr(c.n, "transA", 0)
	tb := attrIntOr(c.n, "transB", 0)
	gemm := func(x, y string, tx, ty int64) string {
		return c.op("Gemm", []attr{attrFloat("alpha", alpha), attrInt("transA", tx), attrInt("transB", ty)}, x, y)
	}
	gx := c.grads()
	if c.need[0] {
		if ta == 0 { // α·g·B'ᵀ
			gx[0] = gemm(g, c.in(1), 0, 1-tb)
		} else { // (α·g·B'ᵀ)ᵀ = α·B'·gᵀ
			gx[0] = gemm(c.in(1), g, tb, 1)
		}
	}
	if c.need[1] {
		if tb == 0 { // α·A'ᵀ·g
			gx[1] = gemm(c.in(0), g, 1-ta, 0)
		} else { // (α·A'ᵀ·g)ᵀ = α·gᵀ·A'
			gx[1] = gemm(g, c.in(0), 1, ta)
		}
	}
	if len(c.need) > 2 && c.need[2] {
		gc := g
		if beta != 1 {
			gc = c.op("Mul", nil, g, c.scalar(float64(beta)))
		}
		var err error
		if gx[2], err = c.unbroadcast(gc, c.outInfo(0), c.in(2)); err != nil {
			return nil, err
		}
	}
	return gx, nil
}
