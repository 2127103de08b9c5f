package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// CI reports whether the tests run under continuous integration (CI=true),
// where a missing prerequisite is a failure instead of a skip.
func CI() bool { return os.Getenv("CI") == "true" }

// Require skips t when err is not nil — or fails it under CI=true — saying
// what is missing, why (err) and how a user gets it (a command, a link, a
// script). It returns when err is nil.
func Require(t testing.TB, err error, what, how string) {
	t.Helper()
	if err == nil {
		return
	}
	if CI() {
		t.Fatalf("CI=true but %s is missing: %v (%s)", what, err, how)
	}
	t.Skipf("%s not available, skipping: %v (%s)", what, err, how)
}

// NeedFile skips t (fails it under CI=true) when path does not exist. what
// names the file for people ("the ViT-Ti/16 checkpoint"), how says how to
// get it or an equivalent one. It returns path.
func NeedFile(t testing.TB, path, what, how string) string {
	t.Helper()
	_, err := os.Stat(path)
	Require(t, err, what, how)
	return path
}

// Python is the interpreter the numpy tests run (Debian's, where the
// project's goldens were made).
const Python = "/usr/bin/python3"

// NeedNumpy skips t (fails it under CI=true) unless Python imports numpy,
// and returns Python.
func NeedNumpy(t testing.TB) string {
	t.Helper()
	err := exec.Command(Python, "-c", "import numpy").Run()
	Require(t, err, Python+" with numpy", "apt-get install python3-numpy")
	return Python
}

// ModuleRoot is the folder holding go.mod, found upwards from the test's
// working directory (its package folder).
func ModuleRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test's folder")
		}
		dir = parent
	}
}

// SharedData is the folder of the real models the team shares, relative to
// the module root: ../shared/data (MobileNetV2 int8 ONNX, ViT-Ti/16
// safetensors; see docs/TESTING.md for how to get equivalent files).
func SharedData(t testing.TB) string {
	t.Helper()
	return filepath.Join(filepath.Dir(ModuleRoot(t)), "shared", "data")
}
