package ort

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// Version is the ONNX Runtime release that scripts/install-onnxruntime.sh
// installs. onnxruntime_go v1.27.0 speaks C API 24, served by 1.24.x and newer.
const Version = "1.24.3"

// LibEnv is the environment variable that names the ONNX Runtime shared
// library when no --ort-lib flag is given.
const LibEnv = "CL_ORT_LIB"

// InstallCommand is the one command that installs the library cl looks for.
const InstallCommand = "scripts/install-onnxruntime.sh"

// DefaultLib returns where scripts/install-onnxruntime.sh puts the library:
// ${CL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cl}/onnxruntime-1.24.3/libonnxruntime.so.1.
// getenv is os.Getenv in normal use (a parameter so tests can fake the environment).
func DefaultLib(getenv func(string) string) string {
	cache := getenv("CL_CACHE_DIR")
	if cache == "" {
		base := getenv("XDG_CACHE_HOME")
		if base == "" {
			base = filepath.Join(getenv("HOME"), ".cache")
		}
		cache = filepath.Join(base, "cl")
	}
	return filepath.Join(cache, "onnxruntime-"+Version, "libonnxruntime.so.1")
}

// LibSource says where a library path came from.
type LibSource string

// The places FindLib looks, in order.
const (
	FromFlag    LibSource = "--ort-lib"
	FromEnv     LibSource = LibEnv
	FromDefault LibSource = "default location"
)

// FindLib resolves the ONNX Runtime library path: the flag value if set,
// else $CL_ORT_LIB if set, else DefaultLib. It does not check that the file
// exists (Init does, with an error that says how to install it).
func FindLib(flag string, getenv func(string) string) (string, LibSource) {
	if flag != "" {
		return flag, FromFlag
	}
	if v := getenv(LibEnv); v != "" {
		return v, FromEnv
	}
	return DefaultLib(getenv), FromDefault
}

var ortState struct {
	mu   sync.Mutex
	path string // the library the environment was initialised with; "" = none yet
}

// Init loads the ONNX Runtime library found by FindLib(flag, os.Getenv)
// and initialises the process-wide environment, once. Later calls with the
// same (or an empty) choice are free; asking for a different library after one
// is loaded is an error, as a process can hold only one ONNX Runtime. It
// returns the path of the library in use. A missing or incompatible library
// gives an error that names the path and the command that installs it.
func Init(flag string) (string, error) {
	if !haveCgo {
		return "", ErrNoCgo
	}
	path, src := FindLib(flag, os.Getenv)
	ortState.mu.Lock()
	defer ortState.mu.Unlock()
	if ortState.path != "" {
		if src == FromDefault || sameFile(path, ortState.path) {
			return ortState.path, nil
		}
		return "", fmt.Errorf("ONNX Runtime is already loaded from %s in this process; cannot switch to %s (from %s)", ortState.path, path, src)
	}
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("ONNX Runtime library not found at %s (from %s): %v\n"+
			"install it with: %s   (or point %s / --ort-lib at a libonnxruntime.so of version %s or newer)",
			path, src, errors.Unwrap(err), InstallCommand, LibEnv, Version)
	}
	if err := loadLibrary(path); err != nil {
		return "", fmt.Errorf("cannot load ONNX Runtime from %s (from %s): %v\n"+
			"cl needs ONNX Runtime %s or newer (C API 24); install it with: %s",
			path, src, err, Version, InstallCommand)
	}
	ortState.path = path
	return path, nil
}

// VersionLoaded returns the version string of the loaded ONNX Runtime
// library, or "" when none is loaded.
func VersionLoaded() string {
	ortState.mu.Lock()
	defer ortState.mu.Unlock()
	if ortState.path == "" {
		return ""
	}
	return libraryVersion()
}

func sameFile(a, b string) bool {
	if a == b {
		return true
	}
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(fa, fb)
}

// Device is where a session runs: the CPU, or CUDA GPU number ID.
type Device struct {
	// CUDA is true for the CUDA execution provider.
	CUDA bool
	// ID is the CUDA device ordinal (0 for "cuda").
	ID int
}

// String gives "cpu" or "cuda:N".
func (d Device) String() string {
	if !d.CUDA {
		return "cpu"
	}
	return "cuda:" + strconv.Itoa(d.ID)
}

// ParseDevice parses "cpu" (or ""), "cuda" (= cuda:0) and "cuda:N" with N ≥ 0.
func ParseDevice(s string) (Device, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	switch {
	case t == "" || t == "cpu":
		return Device{}, nil
	case t == "cuda":
		return Device{CUDA: true}, nil
	case strings.HasPrefix(t, "cuda:"):
		id, err := strconv.Atoi(t[len("cuda:"):])
		if err != nil || id < 0 || id > 1023 {
			return Device{}, fmt.Errorf("device %q: the CUDA device number must be a whole number ≥ 0 (e.g. cuda:0)", s)
		}
		return Device{CUDA: true, ID: id}, nil
	}
	return Device{}, fmt.Errorf("device %q unknown: use cpu, cuda or cuda:N", s)
}
