//go:build cgo

package ort

import onnxrt "github.com/yalue/onnxruntime_go"

// haveCgo: this build can load ONNX Runtime.
const haveCgo = true

// loadLibrary opens the ONNX Runtime library at path and initialises the
// process-wide environment.
func loadLibrary(path string) error {
	onnxrt.SetSharedLibraryPath(path)
	return onnxrt.InitializeEnvironment(onnxrt.WithLogLevelError())
}

// libraryVersion is the loaded library's version string.
func libraryVersion() string { return onnxrt.GetVersion() }
