package features

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// Space says which feature space rows live in: what produced them. Feature
// files and head files both carry one; features fit a head, and two heads
// merge, only when their spaces are the same (see Same).
type Space struct {
	// Model is the backbone file's base name (descriptive only).
	Model string
	// ModelSHA256 is the hex SHA-256 of the backbone file's bytes. It is
	// the identity of files written before fingerprints existed.
	ModelSHA256 string
	// Preprocess is the JSON of the preprocessing that produced the rows.
	Preprocess string
	// Fingerprint is the hex SHA-256 of what determines the features: the
	// graph and weights without descriptive metadata, the input and output
	// tensor names, and the preprocessing (models.Fingerprint). Empty in
	// files written before it existed.
	Fingerprint string
}

// Same reports whether a and b are the same feature space. When both carry
// a fingerprint, the fingerprints decide (so two cuts of one graph that
// differ only in descriptive metadata match). When either lacks one (a file
// written before fingerprints), the model file hash and the preprocessing
// JSON must both be equal, as they had to be then.
func Same(a, b Space) bool {
	if a.Fingerprint != "" && b.Fingerprint != "" {
		return a.Fingerprint == b.Fingerprint
	}
	return a.ModelSHA256 == b.ModelSHA256 && a.Preprocess == b.Preprocess
}

// String describes the space for error messages: model name, fingerprint
// (or file hash) prefix and preprocessing.
func (s Space) String() string {
	if s.Fingerprint != "" {
		return fmt.Sprintf("model %q (fingerprint %.12s…, preprocess %s)", s.Model, s.Fingerprint, s.Preprocess)
	}
	return fmt.Sprintf("model %q (file sha256 %.12s…, preprocess %s; no fingerprint)", s.Model, s.ModelSHA256, s.Preprocess)
}

// Adopt returns s with the fingerprint of other filled in when s has none
// and other is the same space: a head written before fingerprints takes the
// fingerprint of the first current feature file it learns.
func (s Space) Adopt(other Space) Space {
	if s.Fingerprint == "" && other.Fingerprint != "" && Same(s, other) {
		s.Fingerprint = other.Fingerprint
	}
	return s
}

// Space returns the set's feature space.
func (s *Set) Space() Space {
	return Space{Model: s.Model, ModelSHA256: s.ModelSHA256, Preprocess: s.Preprocess, Fingerprint: s.Fingerprint}
}

// joinSpaces is the space of the column concatenation [a | b] (ConcatByID):
// names and hashes joined with "+", preprocessing as a JSON array, and a
// fingerprint hashed from both fingerprints (empty when either has none),
// so that the same two spaces always give the same joined space.
func joinSpaces(a, b Space, preprocess string) Space {
	out := Space{
		Model:       a.Model + "+" + b.Model,
		ModelSHA256: a.ModelSHA256 + "+" + b.ModelSHA256,
		Preprocess:  preprocess,
	}
	if a.Fingerprint != "" && b.Fingerprint != "" {
		sum := sha256.Sum256([]byte("cl.features concat\x00" + a.Fingerprint + "\x00" + b.Fingerprint))
		out.Fingerprint = hex.EncodeToString(sum[:])
	}
	return out
}
