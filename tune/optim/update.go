package optim

import "math"

// The update rules below follow torch 1.13's _single_tensor_sgd /
// _single_tensor_adam / _single_tensor_adamw operation by operation: every
// tensor operation in float32, Python scalars (bias corrections, step size)
// in float64 and rounded to float32 where torch passes them to a kernel.

// sgd is torch.optim.SGD's update of one parameter.
func (o *Optimizer) sgd(p, g []float32, st *paramState, lr, wd float64) {
	mom := float32(o.cfg.Momentum)
	damp := float32(1 - o.cfg.Dampening)
	wd32 := float32(wd)
	nlr := float32(-lr)
	if o.cfg.Momentum != 0 && st.buf == nil {
		st.buf = make([]float32, len(p))
		for i := range p {
			d := g[i]
			if wd != 0 {
				d += wd32 * p[i]
			}
			st.buf[i] = d // torch: buf = clone(d_p) at the first step
			if o.cfg.Nesterov {
				d += mom * d
			}
			p[i] += nlr * d
		}
		return
	}
	for i := range p {
		d := g[i]
		if wd != 0 {
			d += wd32 * p[i]
		}
		if o.cfg.Momentum != 0 {
			b := st.buf[i]*mom + damp*d
			st.buf[i] = b
			if o.cfg.Nesterov {
				d += mom * b
			} else {
				d = b
			}
		}
		p[i] += nlr * d
	}
}

// adam is torch.optim.Adam's (decoupled = false) or AdamW's update of one
// parameter; st.step has already been incremented.
func (o *Optimizer) adam(p, g []float32, st *paramState, lr, wd float64, decoupled bool) {
	if st.buf == nil {
		st.buf = make([]float32, len(p))
		st.sq = make([]float32, len(p))
	}
	b1, b2 := o.cfg.Beta1, o.cfg.Beta2
	t := float64(st.step)
	bc1 := 1 - math.Pow(b1, t)
	bc2 := 1 - math.Pow(b2, t)
	stepSize := float32(-(lr / bc1))
	bc2sqrt := float32(math.Sqrt(bc2))
	eps := float32(o.cfg.Eps)
	b1f, b2f := float32(b1), float32(b2)
	a1, a2 := float32(1-b1), float32(1-b2)
	wd32 := float32(wd)
	decay := float32(1 - lr*wd)
	m, v := st.buf, st.sq
	for i := range p {
		gi := g[i]
		if decoupled {
			if wd != 0 {
				p[i] *= decay
			}
		} else if wd != 0 {
			gi += wd32 * p[i]
		}
		m[i] = m[i]*b1f + a1*gi
		v[i] = v[i]*b2f + a2*gi*gi
		denom := float32(math.Sqrt(float64(v[i])))/bc2sqrt + eps
		p[i] += stepSize * m[i] / denom
	}
}
