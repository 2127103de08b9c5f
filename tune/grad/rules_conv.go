package grad

import "fmt"

func init() { register(ruleConv, "Conv") }

// Conv, the non-overlapping case (2-D, kernel = stride, no padding, no
// dilation, one group, input sizes known multiples of the kernel: a ViT's
// patch embedding). It is a matrix product over the patches: with
// X_p [N·gh·gw, C·P·Q] the patches, G [N·gh·gw, O] the output gradient,
// W_f [O, C·P·Q] the flattened kernel:
//
//	g_W = Gᵀ·X_p,  g_X = patches⁻¹(G·W_f),  g_b = Σ g over N, gh, gw.
func ruleConv(c *rctx, gy []string) ([]string, error) {
	xi, wi := c.inInfo(0), c.inInfo(1)
	if xi.rank != 4 || wi.rank != 4 {
		return nil, fmt.Errorf("only 2-D convolutions (rank-4 input and weight) have a gradient rule")
	}
	wd, ok := wi.staticDims()
	if !ok {
		return nil, fmt.Errorf("the weight's shape must be known")
	}
	O, C, P, Q := wd[0], wd[1], wd[2], wd[3]
	if ks := attrIntsOr(c.n, "kernel_shape", nil); ks != nil && (ks[0] != P || ks[1] != Q) {
		return nil, fmt.Errorf("kernel_shape %v differs from the weight's %v", ks, wd[2:])
	}
	st := attrIntsOr(c.n, "strides", []int64{1, 1})
	pads := attrIntsOr(c.n, "pads", []int64{0, 0, 0, 0})
	dil := attrIntsOr(c.n, "dilations", []int64{1, 1})
	if attrIntOr(c.n, "group", 1) != 1 || st[0] != P || st[1] != Q || !attrString0(c.n, "auto_pad") ||
		pads[0] != 0 || pads[1] != 0 || pads[2] != 0 || pads[3] != 0 || dil[0] != 1 || dil[1] != 1 {
		return nil, fmt.Errorf("only non-overlapping convolutions (kernel = stride, no padding or dilation, group 1) have a gradient rule")
	}
	H, W := xi.dims[2], xi.dims[3]
	if !H.known() || !W.known() || H.n%P != 0 || W.n%Q != 0 || xi.dims[1] != known(C) {
		return nil, fmt.Errorf("input %q of shape %v: the gradient needs known C=%d and H, W multiples of the kernel %d×%d", c.in(0), xi, C, P, Q)
	}
	gh, gw := H.n/P, W.n/Q
	g2 := c.op("Reshape", nil, c.op("Transpose", []attr{attrInts("perm", 0, 2, 3, 1)}, gy[0]), c.e.i64(-1, O))
	gx := c.grads()
	if c.need[1] {
		xp := c.op("Reshape", nil, c.op("Transpose", []attr{attrInts("perm", 0, 2, 4, 1, 3, 5)},
			c.op("Reshape", nil, c.in(0), c.e.i64(-1, C, gh, P, gw, Q))), c.e.i64(-1, C*P*Q))
		gx[1] = c.op("Reshape", nil, c.op("Gemm", []attr{attrInt("transA", 1)}, g2, xp), c.e.i64(O, C, P, Q))
	}
	if len(c.need) > 2 && c.need[2] {
		gx[2] = c.op("ReduceSum", []attr{attrInt("keepdims", 0)}, gy[0], c.e.i64(0, 2, 3))
	}
	if c.need[0] {
		p := c.op("MatMul", nil, g2, c.op("Reshape", nil, c.in(1), c.e.i64(O, C*P*Q)))
		gx[0] = c.op("Reshape", nil, c.op("Transpose", []attr{attrInts("perm", 0, 3, 1, 4, 2, 5)},
			c.op("Reshape", nil, p, c.e.i64(-1, gh, gw, C, P, Q))), c.e.i64(-1, C, H.n, W.n))
	}
	return gx, nil
}
