//go:build !cgo

package ort

import (
	"github.com/cl-dev/cl/models"
)

const haveCgo = false

func loadLibrary(string) error { return ErrNoCgo }

func libraryVersion() string { return "" }

// Session is the cgo-free stand-in of the ONNX Runtime session: NewSession
// always fails with ErrNoCgo, so no Session exists in such a build.
type Session struct{}

// NewSession returns ErrNoCgo.
func NewSession(string, []byte, []string, []string, SessionOptions) (*Session, error) {
	return nil, ErrNoCgo
}

func (*Session) Inputs() []string               { return nil }
func (*Session) Outputs() []string              { return nil }
func (*Session) Device() Device                 { return Device{} }
func (*Session) Run([]Tensor) ([]Tensor, error) { return nil, ErrNoCgo }
func (*Session) Close() error                   { return nil }

// Backbone is the cgo-free stand-in of the ONNX Runtime backbone: Open and
// OpenData always fail with ErrNoCgo.
type Backbone struct{}

// Open returns ErrNoCgo.
func Open(string, Options) (*Backbone, error) { return nil, ErrNoCgo }

// OpenData returns ErrNoCgo.
func OpenData(string, []byte, Options) (*Backbone, error) { return nil, ErrNoCgo }

func (*Backbone) Manifest() models.Manifest             { return models.Manifest{} }
func (*Backbone) Dim() int                              { return 0 }
func (*Backbone) InputSize() int                        { return 0 }
func (*Backbone) SHA256() string                        { return "" }
func (*Backbone) Fingerprint() string                   { return "" }
func (*Backbone) Path() string                          { return "" }
func (*Backbone) Device() Device                        { return Device{} }
func (*Backbone) Run([]float32, int) ([]float32, error) { return nil, ErrNoCgo }
func (*Backbone) Close() error                          { return nil }
