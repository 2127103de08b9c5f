package grad

import (
	"fmt"
	"math"
)

// Elementwise operators. Binary ones broadcast: each input's gradient is
// reduced back to its shape (unbroadcast).

func init() {
	register(ruleAdd, "Add", "Sum")
	register(ruleSub, "Sub")
	register(ruleMul, "Mul")
	register(ruleDiv, "Div")
	register(rulePow, "Pow")
	register(ruleUnary, "Identity", "Dropout", "Neg", "Sqrt", "Erf", "Relu", "Tanh", "Sigmoid", "Exp", "Log",
		"Reciprocal", "Abs")
	register(ruleCast, "Cast")
	register(ruleWhere, "Where")
}

// Add, Sum: g to every input.
func ruleAdd(c *rctx, gy []string) ([]string, error) {
	gx := c.grads()
	for j := range gx {
		gx[j] = gy[0]
	}
	return c.unbroadcastAll(gx)
}

// Sub: g, −g.
func ruleSub(c *rctx, gy []string) ([]string, error) {
	gx := c.grads()
	if c.need[0] {
		gx[0] = gy[0]
	}
	if c.need[1] {
		gx[1] = c.op("Neg", nil, gy[0])
	}
	return c.unbroadcastAll(gx)
}

// Mul: g·b, g·a.
func ruleMul(c *rctx, gy []string) ([]string, error) {
	gx := c.grads()
	if c.need[0] {
		gx[0] = c.op("Mul", nil, gy[0], c.in(1))
	}
	if c.need[1] {
		gx[1] = c.op("Mul", nil, gy[0], c.in(0))
	}
	return c.unbroadcastAll(gx)
}

// Div y = a/b: g/b, −g·y/b.
func ruleDiv(c *rctx, gy []string) ([]string, error) {
	gx := c.grads()
	if c.need[0] {
		gx[0] = c.op("Div", nil, gy[0], c.in(1))
	}
	if c.need[1] {
		gx[1] = c.op("Neg", nil, c.op("Div", nil, c.op("Mul", nil, gy[0], c.out(0)), c.in(1)))
	}
	return c.unbroadcastAll(gx)
}

// Pow y = a^b: g·b·a^(b−1) (a constant b folded), g·y·ln a.
func rulePow(c *rctx, gy []string) ([]string, error) {
	gx := c.grads()
	if c.inInfo(1).dt != c.inInfo(0).dt && c.need[1] {
		return nil, fmt.Errorf("exponent of another type than the base cannot be trained")
	}
	if c.need[0] {
		if fv := c.inInfo(1).fval; len(fv) == 1 {
			p := fv[0]
			var d string
			switch p {
			case 1:
				d = gy[0]
			case 2:
				d = c.op("Mul", nil, gy[0], c.op("Mul", nil, c.in(0), c.scalar(2)))
			default:
				d = c.op("Mul", nil, gy[0], c.op("Mul", nil, c.op("Pow", nil, c.in(0), c.scalar(p-1)), c.scalar(p)))
			}
			gx[0] = d
		} else {
			b := c.in(1)
			if c.inInfo(1).dt != c.dt() {
				b = c.op("Cast", []attr{attrInt("to", int64(c.dt()))}, b)
			}
			pm1 := c.op("Pow", nil, c.in(0), c.op("Sub", nil, b, c.scalar(1)))
			gx[0] = c.op("Mul", nil, gy[0], c.op("Mul", nil, pm1, b))
		}
	}
	if c.need[1] {
		gx[1] = c.op("Mul", nil, c.op("Mul", nil, gy[0], c.out(0)), c.op("Log", nil, c.in(0)))
	}
	return c.unbroadcastAll(gx)
}

// ruleUnary covers the one-input elementwise operators.
func ruleUnary(c *rctx, gy []string) ([]string, error) {
	gx := c.grads()
	if !c.need[0] {
		return gx, nil
	}
	g, x, y := gy[0], c.in(0), c.out(0)
	switch c.n.GetOpType() {
	case "Identity", "Dropout":
		gx[0] = g
	case "Neg":
		gx[0] = c.op("Neg", nil, g)
	case "Sqrt": // g / (2√x)
		gx[0] = c.op("Div", nil, c.op("Mul", nil, g, c.scalar(0.5)), y)
	case "Erf": // g · 2/√π · exp(−x²)
		e := c.op("Exp", nil, c.op("Neg", nil, c.op("Mul", nil, x, x)))
		gx[0] = c.op("Mul", nil, g, c.op("Mul", nil, e, c.scalar(2/math.Sqrt(math.Pi))))
	case "Relu": // g where y > 0
		gx[0] = c.op("Where", nil, c.op("Greater", nil, y, c.scalar(0)), g, c.scalar(0))
	case "Tanh": // g · (1 − y²)
		gx[0] = c.op("Mul", nil, g, c.op("Sub", nil, c.scalar(1), c.op("Mul", nil, y, y)))
	case "Sigmoid": // g · y · (1 − y)
		gx[0] = c.op("Mul", nil, g, c.op("Mul", nil, y, c.op("Sub", nil, c.scalar(1), y)))
	case "Exp":
		gx[0] = c.op("Mul", nil, g, y)
	case "Log":
		gx[0] = c.op("Div", nil, g, x)
	case "Reciprocal": // −g·y²
		gx[0] = c.op("Neg", nil, c.op("Mul", nil, g, c.op("Mul", nil, y, y)))
	case "Abs": // g · sign(x)
		gx[0] = c.op("Mul", nil, g, c.op("Sign", nil, x))
	default:
		return nil, fmt.Errorf("internal: no unary rule")
	}
	return gx, nil
}

// Cast: the gradient cast back to the input's type.
func ruleCast(c *rctx, gy []string) ([]string, error) {
	gx := c.grads()
	if c.need[0] {
		dt := c.inInfo(0).dt
		if dt != tFloat && dt != tDouble {
			return nil, fmt.Errorf("input %q is not float or double", c.in(0))
		}
		gx[0] = c.op("Cast", []attr{attrInt("to", int64(dt))}, gy[0])
	}
	return gx, nil
}

// Where(cond, a, b): g where cond to a, g elsewhere to b.
func ruleWhere(c *rctx, gy []string) ([]string, error) {
	gx := c.grads()
	z := c.scalar(0)
	if c.need[1] {
		gx[1] = c.op("Where", nil, c.in(0), gy[0], z)
	}
	if c.need[2] {
		gx[2] = c.op("Where", nil, c.in(0), z, gy[0])
	}
	return c.unbroadcastAll(gx)
}
