package grad

import (
	"fmt"
	"strings"

	"github.com/cl-dev/cl/models/onnxpb"
)

// nonDifferentiable operators: their outputs carry no gradient (integer,
// boolean or constant results).
var nonDifferentiable = map[string]bool{
	"Shape": true, "Size": true, "ConstantOfShape": true, "Equal": true, "Greater": true, "Less": true,
	"GreaterOrEqual": true, "LessOrEqual": true, "Not": true, "And": true, "Or": true, "Xor": true,
	"ArgMax": true, "ArgMin": true, "OneHot": true, "NonZero": true, "IsNaN": true, "IsInf": true,
	"Constant": true, "Range": true,
}

// firstOutputOnly operators have auxiliary outputs without gradients.
var firstOutputOnly = map[string]bool{"LayerNormalization": true, "Dropout": true}

// reach returns the tensors that depend on a trainable one (active: float
// outputs of differentiable operators) and those the loss depends on.
func reach(g *onnxpb.GraphProto, s *shapes, trainable []string, loss string) (active, toLoss map[string]bool) {
	active = map[string]bool{}
	for _, t := range trainable {
		active[t] = true
	}
	for _, n := range g.GetNode() {
		if nonDifferentiable[n.GetOpType()] {
			continue
		}
		on := false
		for _, in := range n.GetInput() {
			on = on || active[in]
		}
		if !on {
			continue
		}
		for i, o := range n.GetOutput() {
			if o == "" || (i > 0 && firstOutputOnly[n.GetOpType()]) {
				continue
			}
			if dt := s.get(o).dt; dt == tFloat || dt == tDouble || dt == 0 {
				active[o] = true
			}
		}
	}
	toLoss = map[string]bool{loss: true}
	nodes := g.GetNode()
	for i := len(nodes) - 1; i >= 0; i-- {
		n := nodes[i]
		hit := false
		for _, o := range n.GetOutput() {
			hit = hit || toLoss[o]
		}
		if hit {
			for _, in := range n.GetInput() {
				toLoss[in] = true
			}
		}
	}
	return active, toLoss
}

// checkRules fails on the first node on a path from a trainable tensor to
// the loss that has no rule, naming the operator and the node.
func checkRules(nodes []*onnxpb.NodeProto, active, toLoss map[string]bool) error {
	for _, n := range nodes {
		on := false
		for _, o := range n.GetOutput() {
			on = on || (active[o] && toLoss[o])
		}
		if !on {
			continue
		}
		if _, ok := rules[n.GetOpType()]; !ok || (n.GetDomain() != "" && n.GetDomain() != "ai.onnx") {
			return fmt.Errorf("grad: no gradient rule for operator %s (node %q); rules exist for %s",
				opName(n), n.GetName(), strings.Join(RuleOps(), ", "))
		}
	}
	return nil
}
