//go:build !cgo

package ort

import (
	"errors"
	"testing"
)

// TestNoCgo: a build without cgo refuses every ONNX Runtime entry point with
// ErrNoCgo, which says how to rebuild.
func TestNoCgo(t *testing.T) {
	if _, err := Init(""); !errors.Is(err, ErrNoCgo) {
		t.Errorf("Init: %v", err)
	}
	if _, err := Open("model.onnx", Options{}); !errors.Is(err, ErrNoCgo) {
		t.Errorf("Open: %v", err)
	}
	if _, err := NewSession("g", nil, nil, nil, SessionOptions{}); !errors.Is(err, ErrNoCgo) {
		t.Errorf("NewSession: %v", err)
	}
}
