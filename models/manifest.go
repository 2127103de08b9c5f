// Package models owns everything ONNX: loading the ONNX Runtime library,
// sessions on the CPU or CUDA provider, the model manifest, inspecting and
// editing graphs (cut), and building ViT graphs from checkpoints (models/vit).
package models

import (
	"encoding/json"
	"fmt"
)

// ManifestKey is the metadata_props key under which a model carries its
// manifest as JSON, so that one .onnx file says how to feed it.
const ManifestKey = "cl.manifest"

// Preprocess says how an image becomes the model's float32 [N,C,H,W] input
// (docs/METHODS.md §3.3, docs/PREPROCESSING.md): convert to RGB, resize the shorter side to
// Resize pixels with Interpolation (Pillow-compatible, antialiased when
// down-scaling), centre-crop Crop×Crop, scale to [0,1], then (x−Mean)/Std per
// channel when Mean and Std are set.
type Preprocess struct {
	// Resize is the target length of the shorter side in pixels; 0 = none.
	Resize int `json:"resize"`
	// Interpolation is "bicubic" (Pillow BICUBIC, a = −0.5) or "bilinear".
	Interpolation string `json:"interpolation"`
	// Crop is the side of the centre crop in pixels; it is the input H = W.
	Crop int `json:"crop"`
	// Mean and Std are per-channel (R, G, B) on the [0,1] scale; both empty
	// means no normalisation.
	Mean []float32 `json:"mean,omitempty"`
	Std  []float32 `json:"std,omitempty"`
}

// ViTIN21K is the preprocessing of the ViT-B/16-IN21K protocol (docs/METHODS.md §3.3
// test transform): bicubic shorter side 256, centre crop 224, [0,1], no
// mean/std.
func ViTIN21K() Preprocess {
	return Preprocess{Resize: 256, Interpolation: "bicubic", Crop: 224}
}

// ForImageSize scales the ViT protocol to another input size s (the resize is
// s·256/224 rounded, as for a 224 model it is 256).
func ForImageSize(s int) Preprocess {
	return Preprocess{Resize: (s*256 + 112) / 224, Interpolation: "bicubic", Crop: s}
}

// Validate checks that the preprocessing can be carried out.
func (p Preprocess) Validate() error {
	switch p.Interpolation {
	case "bicubic", "bilinear":
	default:
		return fmt.Errorf("preprocess: interpolation %q unknown (use bicubic or bilinear)", p.Interpolation)
	}
	if p.Crop <= 0 || p.Crop > 8192 || p.Resize < 0 || p.Resize > 8192 {
		return fmt.Errorf("preprocess: crop %d / resize %d out of range", p.Crop, p.Resize)
	}
	if p.Resize > 0 && p.Resize < p.Crop {
		return fmt.Errorf("preprocess: resize %d is smaller than crop %d", p.Resize, p.Crop)
	}
	if len(p.Mean) != len(p.Std) || (len(p.Mean) != 0 && len(p.Mean) != 3) {
		return fmt.Errorf("preprocess: mean and std need 3 values each (or none), got %d and %d", len(p.Mean), len(p.Std))
	}
	for _, s := range p.Std {
		if s == 0 {
			return fmt.Errorf("preprocess: std must not be 0")
		}
	}
	return nil
}

// JSON is the canonical encoding stored in feature and head files.
func (p Preprocess) JSON() string {
	b, _ := json.Marshal(p)
	return string(b)
}

// Manifest tells cl how to use a model as a feature extractor.
type Manifest struct {
	// Input is the name of the image input tensor, float32 [N,3,H,W].
	Input string `json:"input"`
	// Output is the name of the feature output tensor, float32 [N,D].
	Output string `json:"output"`
	// Preprocess turns an image into the input tensor.
	Preprocess Preprocess `json:"preprocess"`
	// Backbone is a human description ("ViT-B/16 IN21K", "MobileNetV2 …").
	Backbone string `json:"backbone,omitempty"`
}

// ParseManifest decodes and validates a manifest JSON string.
func ParseManifest(s string) (Manifest, error) {
	var m Manifest
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return m, fmt.Errorf("manifest %s: %w", ManifestKey, err)
	}
	if err := m.Preprocess.Validate(); err != nil {
		return m, err
	}
	return m, nil
}

// JSON encodes the manifest.
func (m Manifest) JSON() string {
	b, _ := json.Marshal(m)
	return string(b)
}
