package tune

import (
	"fmt"

	"github.com/cl-dev/cl/models/onnxpb"
	"github.com/cl-dev/cl/models/vit"
	"github.com/cl-dev/cl/tune/grad"
)

// Names of the tensors the training graph adds to a backbone (those of
// tune/grad's Objective).
const (
	// HeadWeight is the cosine classifier's weight, float32 [C,W].
	HeadWeight = grad.HeadWeightName
	// HeadSigma is the cosine classifier's learnable scale σ, float32 [1].
	HeadSigma = grad.HeadSigmaName
	// LabelsInput is the class indices, int64 [N].
	LabelsInput = grad.LabelsName
	// LogitsOutput is σ·cos(f, w_c), float32 [N,C].
	LogitsOutput = grad.LogitsName
	// LossOutput is the mean cross-entropy, float32 [1].
	LossOutput = grad.LossName
)

// withCosineHead returns the forward graph of method's variant of w with
// the cosine classifier of APER/SimpleCIL (docs/METHODS.md §2.0) over
// classes classes and the mean cross-entropy: logits = σ·cos(f, w_c).
func withCosineHead(w *vit.Weights, method Method, classes int) (*onnxpb.ModelProto, error) {
	m, err := vit.Build(w, method.vitOptions())
	if err != nil {
		return nil, err
	}
	obj := grad.NewObjective(m)
	if err := obj.Classifier(grad.ObjectiveSpec{Features: vit.OutputName, Classes: classes, Head: grad.HeadCosine}); err != nil {
		return nil, err
	}
	return obj.Model(), nil
}

// TrainingGraph builds the variant of w that method trains, with the cosine
// head for classes classes and the loss, and differentiates it: inputs are
// the image, the variant's parameters, HeadWeight, HeadSigma and
// LabelsInput; outputs the loss, the logits and grad.GradName of every
// trained tensor (the variant's parameters, then the head's), in that order.
func TrainingGraph(w *vit.Weights, method Method, classes int) (*onnxpb.ModelProto, []vit.ParamSpec, error) {
	nopt, err := vit.NormalizedOptions(w.Config, method.vitOptions())
	if err != nil {
		return nil, nil, err
	}
	specs := vit.ParamSpecs(w.Config, nopt)
	for _, s := range specs {
		if s.Batched {
			return nil, nil, fmt.Errorf("%s: variant %s has per-image parameters (%s), which first-session tuning does not train", method.Name, method.Variant, s.Name)
		}
	}
	m, err := withCosineHead(w, method, classes)
	if err != nil {
		return nil, nil, err
	}
	var trainable []string
	for _, s := range specs {
		trainable = append(trainable, s.Name)
	}
	trainable = append(trainable, HeadWeight, HeadSigma)
	tg, err := grad.Build(m, grad.Spec{Trainable: trainable, Loss: LossOutput, Keep: []string{LogitsOutput}})
	if err != nil {
		return nil, nil, fmt.Errorf("%s: differentiating the training graph: %w", method.Name, err)
	}
	return tg, specs, nil
}

func (m Method) vitOptions() vit.Options {
	return vit.Options{Variant: m.Variant, Tokens: m.Tokens, Layers: m.Layers, Bottleneck: m.Bottleneck, Scale: m.Scale}
}
