//go:build cgo

package ort

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"runtime"
	"strconv"

	"google.golang.org/protobuf/proto"

	onnxrt "github.com/yalue/onnxruntime_go"

	"github.com/cl-dev/cl/models"
	"github.com/cl-dev/cl/models/onnxpb"
)

// Backbone is a frozen feature extractor: float32 images [N,3,S,S] in,
// float32 features [N,D] out. It is safe for concurrent use by several
// goroutines (ONNX Runtime's DynamicAdvancedSession).
type Backbone struct {
	path     string
	sha      string
	fp       string
	man      models.Manifest
	dim      int
	size     int
	device   Device
	session  *onnxrt.DynamicAdvancedSession
	fixedN   int // > 0 when the model's batch dimension is fixed
	closeErr error
	closed   bool
}

// Open loads the model at path with its manifest (or opts.Manifest) and
// creates an ONNX Runtime session on opts.Device. It checks, before building
// the session, that the manifest's input is float32 [N,3,S,S] with S equal to
// the manifest's crop and that its output is float32 [N,D].
func Open(path string, opts Options) (*Backbone, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading model: %w", err)
	}
	return OpenData(path, data, opts)
}

// OpenData is Open on the bytes of an .onnx file; name is used in errors and
// as Path. SHA256 is the hash of data.
func OpenData(name string, data []byte, opts Options) (*Backbone, error) {
	dev, err := ParseDevice(opts.Device)
	if err != nil {
		return nil, err
	}
	if opts.Threads < 0 {
		return nil, fmt.Errorf("threads %d: must be ≥ 0 (0 = all cores)", opts.Threads)
	}
	m := &onnxpb.ModelProto{}
	if err := proto.Unmarshal(data, m); err != nil {
		return nil, fmt.Errorf("%s is not a readable ONNX model: %v", name, err)
	}
	if m.GetGraph() == nil {
		return nil, fmt.Errorf("%s is not an ONNX model: it has no graph", name)
	}
	var man models.Manifest
	if opts.Manifest != nil {
		man = *opts.Manifest
		if err := man.Preprocess.Validate(); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	} else {
		var ok bool
		man, ok, err = models.ManifestOf(m)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if !ok {
			return nil, fmt.Errorf("%s has no cl manifest (metadata %q): add one with `cl models cut %s --tensor OUTPUT --preprocess vit-in21k|imagenet|JSON --out NEW.onnx`", name, models.ManifestKey, name)
		}
	}
	sig, err := models.CheckSignature(name, m.GetGraph(), &man)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	b := &Backbone{path: name, sha: hex.EncodeToString(sum[:]), fp: models.Fingerprint(m, man), man: man, dim: sig.Dim,
		size: man.Preprocess.Crop, device: dev, fixedN: sig.FixedN}

	if _, err := Init(opts.ORTLib); err != nil {
		return nil, err
	}
	so, err := SessionOptions{Threads: opts.Threads, NoSpinning: opts.NoSpinning}.build(dev)
	if err != nil {
		return nil, err
	}
	defer so.Destroy()
	s, err := onnxrt.NewDynamicAdvancedSessionWithONNXData(data, []string{man.Input}, []string{man.Output}, so)
	if err != nil {
		if dev.CUDA {
			return nil, cudaError(dev, err)
		}
		return nil, fmt.Errorf("ONNX Runtime cannot load %s: %w", name, err)
	}
	b.session = s
	if b.dim <= 0 {
		// The feature width is symbolic: learn it from one zero image.
		n := 1
		if b.fixedN > 0 {
			n = b.fixedN
		}
		out, err := b.run(make([]float32, n*3*b.size*b.size), n, true)
		if err != nil {
			b.Close()
			return nil, err
		}
		b.dim = len(out) / n
		if b.dim == 0 {
			b.Close()
			return nil, fmt.Errorf("%s: output %q has 0 features per image", name, man.Output)
		}
	}
	return b, nil
}

func appendCUDA(so *onnxrt.SessionOptions, dev Device) error {
	co, err := onnxrt.NewCUDAProviderOptions()
	if err != nil {
		return cudaError(dev, err)
	}
	defer co.Destroy()
	if err := co.Update(map[string]string{"device_id": strconv.Itoa(dev.ID)}); err != nil {
		return cudaError(dev, err)
	}
	if err := so.AppendExecutionProviderCUDA(co); err != nil {
		return cudaError(dev, err)
	}
	return nil
}

func cudaError(dev Device, err error) error {
	return fmt.Errorf("the CUDA provider could not be loaded for %s: %v\n"+
		"install the GPU build of ONNX Runtime (%s or newer) and CUDA 12, or use --device cpu", dev, err, Version)
}

// Manifest returns the manifest in use (input/output names filled in).
func (b *Backbone) Manifest() models.Manifest { return b.man }

// Dim is the feature width D.
func (b *Backbone) Dim() int { return b.dim }

// InputSize is the image side S of the [N,3,S,S] input.
func (b *Backbone) InputSize() int { return b.size }

// SHA256 is the hex sha256 of the model file's bytes.
func (b *Backbone) SHA256() string { return b.sha }

// Fingerprint identifies the features the backbone computes: the graph and
// weights without descriptive metadata, and the manifest in use
// (models.Fingerprint).
func (b *Backbone) Fingerprint() string { return b.fp }

// Path is the model file the backbone was opened from.
func (b *Backbone) Path() string { return b.path }

// Device is where the session runs.
func (b *Backbone) Device() Device { return b.device }

// Run computes features for n images: x is [n,3,S,S] row-major float32
// (len n·3·S·S); the result is a new [n,D] row-major slice. ONNX Runtime
// reads x in place and writes the result in place (no copies). Safe for
// concurrent calls.
func (b *Backbone) Run(x []float32, n int) ([]float32, error) {
	if b.session == nil {
		return nil, ErrClosed
	}
	if n <= 0 {
		return nil, fmt.Errorf("run: batch size %d must be positive", n)
	}
	if want := n * 3 * b.size * b.size; len(x) != want {
		return nil, fmt.Errorf("run: input has %d values, want %d×3×%d×%d = %d", len(x), n, b.size, b.size, want)
	}
	if b.fixedN > 0 && n != b.fixedN {
		return b.runFixed(x, n)
	}
	return b.run(x, n, false)
}

// runFixed runs a model whose batch dimension is fixed at b.fixedN on any n:
// whole chunks of fixedN images, the last one zero-padded (its padding rows
// are dropped from the output).
func (b *Backbone) runFixed(x []float32, n int) ([]float32, error) {
	per := 3 * b.size * b.size
	out := make([]float32, 0, n*b.dim)
	var pad []float32
	for start := 0; start < n; start += b.fixedN {
		k := min(b.fixedN, n-start)
		chunk := x[start*per : (start+k)*per]
		if k < b.fixedN {
			if pad == nil {
				pad = make([]float32, b.fixedN*per)
			}
			copy(pad, chunk)
			clear(pad[k*per:])
			chunk = pad
		}
		y, err := b.run(chunk, b.fixedN, false)
		if err != nil {
			return nil, err
		}
		out = append(out, y[:k*b.dim]...)
	}
	return out, nil
}

func (b *Backbone) run(x []float32, n int, probe bool) ([]float32, error) {
	in, err := onnxrt.NewTensor(onnxrt.NewShape(int64(n), 3, int64(b.size), int64(b.size)), x)
	if err != nil {
		return nil, fmt.Errorf("run: input tensor: %w", err)
	}
	defer in.Destroy()
	if probe {
		outs := []onnxrt.Value{nil}
		if err := b.session.Run([]onnxrt.Value{in}, outs); err != nil {
			return nil, fmt.Errorf("running %s: %w", b.path, err)
		}
		defer outs[0].Destroy()
		t, ok := outs[0].(*onnxrt.Tensor[float32])
		if !ok {
			return nil, fmt.Errorf("%s: output %q is not a float32 tensor", b.path, b.man.Output)
		}
		if sh := t.GetShape(); len(sh) != 2 || sh[0] != int64(n) {
			return nil, fmt.Errorf("%s: output %q has shape %v for %d images; want [%d,D]", b.path, b.man.Output, sh, n, n)
		}
		return append([]float32(nil), t.GetData()...), nil
	}
	y := make([]float32, n*b.dim)
	out, err := onnxrt.NewTensor(onnxrt.NewShape(int64(n), int64(b.dim)), y)
	if err != nil {
		return nil, fmt.Errorf("run: output tensor: %w", err)
	}
	defer out.Destroy()
	if err := b.session.Run([]onnxrt.Value{in}, []onnxrt.Value{out}); err != nil {
		return nil, fmt.Errorf("running %s on %d images: %w", b.path, n, err)
	}
	runtime.KeepAlive(x)
	return y, nil
}

// Close releases the session. Further Runs return ErrClosed. It is not safe
// to Close while Runs are in flight.
func (b *Backbone) Close() error {
	if b.closed {
		return b.closeErr
	}
	b.closed = true
	if b.session != nil {
		b.closeErr = b.session.Destroy()
		b.session = nil
	}
	return b.closeErr
}
