package tune

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/cl-dev/cl/internal/safetensors"
	"github.com/cl-dev/cl/models"
	"github.com/cl-dev/cl/models/onnxpb"
	"github.com/cl-dev/cl/models/ort"
	"github.com/cl-dev/cl/models/vit"
	"github.com/cl-dev/cl/tune/grad"
	"github.com/cl-dev/cl/tune/optim"
)

// Config is one first-session adaptation run.
type Config struct {
	Method Method
	Recipe Recipe
	// Seed fixes parameter initialisation, shuffling and augmentation.
	Seed uint64
	// Train is the transform of training images (augmentation); Eval the
	// deterministic one of held-out images.
	Train, Eval Transform
	// Session options: library, device, threads.
	Session ort.SessionOptions
	// Workers decode and augment images (≥ 1).
	Workers int
	// Checkpoint, when set, is written atomically after every epoch and when
	// the run is cancelled; Resume continues from it when it exists.
	Checkpoint string
	Resume     bool
	// Fingerprint identifies the pre-trained weights; a checkpoint of other
	// weights is refused.
	Fingerprint string
	// Progress, when set, is called after every step and every epoch.
	Progress func(Progress)
	// InitParams, when set, gives the initial value of trained tensors by
	// name (variant parameters, HeadWeight, HeadSigma) instead of the
	// method's initialisation (reproducing another implementation's run).
	InitParams map[string][]float32
	// NoShuffle feeds the images in dataset order every epoch.
	NoShuffle bool
}

// Progress is what a running Train reports.
type Progress struct {
	Epoch, Epochs   int // 1-based epoch, total
	Step, Steps     int // optimiser steps done, total
	Loss            float64
	Accuracy        float64 // training top-1 so far this epoch, %
	ImagesPerSecond float64
	EpochDone       bool
	HeldOut         *EpochStats // set at the end of an epoch with held-out data
}

// EpochStats summarises one epoch.
type EpochStats struct {
	Epoch                  int
	TrainLoss, TrainAcc    float64
	HeldLoss, HeldAcc      float64 // NaN without held-out data
	Seconds                float64
	LearningRate, GradNorm float64
}

// Result is a finished run.
type Result struct {
	// Params are the trained variant parameters, by graph input name, with
	// their ParamSpec shapes (no batch dimension).
	Params map[string]optim.Param
	// Specs lists them in graph-input order.
	Specs []vit.ParamSpec
	// Head is the trained cosine head's weight [C,W] and Sigma its scale.
	Head  []float32
	Sigma float32
	// History has one entry per epoch run (resumed epochs included).
	History []EpochStats
	Steps   int
	Epochs  int
}

// Train adapts method's parameters of the ViT w on train (held may be nil)
// with a cosine head over train's classes: the first session of APER and
// RanPAC (docs/TRAINING.md).
func Train(ctx context.Context, w *vit.Weights, train, held *Dataset, cfg Config) (*Result, error) {
	C := len(train.Classes)
	if C < 2 {
		return nil, fmt.Errorf("training needs at least 2 classes, have %d", C)
	}
	if held != nil && !sameClasses(train.Classes, held.Classes) {
		return nil, fmt.Errorf("the held-out data's classes %v differ from the training classes %v", held.Classes, train.Classes)
	}
	tg, specs, err := TrainingGraph(w, cfg.Method, C)
	if err != nil {
		return nil, err
	}
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(tg)
	if err != nil {
		return nil, err
	}
	inputs := []string{vit.InputName}
	outputs := []string{LossOutput, LogitsOutput}
	for _, s := range specs {
		inputs = append(inputs, s.Name)
		outputs = append(outputs, grad.GradName(s.Name))
	}
	inputs = append(inputs, HeadWeight, HeadSigma, LabelsInput)
	outputs = append(outputs, grad.GradName(HeadWeight), grad.GradName(HeadSigma))
	// Without ONNX Runtime's memory pattern a training step peaks at about
	// half the memory, no slower (docs/PERFORMANCE.md, "Training step").
	trainOpts := cfg.Session
	trainOpts.NoMemPattern = true
	sess, err := ort.NewSession(cfg.Method.Name+" training graph", data, inputs, outputs, trainOpts)
	if err != nil {
		return nil, err
	}
	defer sess.Close()
	var evalSess *ort.Session
	if held != nil && held.Len() > 0 {
		fwd, err := forwardGraph(w, cfg.Method, C)
		if err != nil {
			return nil, err
		}
		evalSess, err = ort.NewSession(cfg.Method.Name+" evaluation graph", fwd, inputs, []string{LossOutput, LogitsOutput}, cfg.Session)
		if err != nil {
			return nil, err
		}
		defer evalSess.Close()
	}

	// Parameters, in session-input order after the image.
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x7475_6e65))
	var params []*optim.Param
	for _, s := range specs {
		shape := make([]int64, len(s.Shape))
		for i, d := range s.Shape {
			shape[i] = int64(d)
		}
		params = append(params, &optim.Param{Name: s.Name, Shape: shape, Data: cfg.Method.Init(s, rng)})
	}
	head := make([]float32, C*w.Width)
	bound := 1 / math.Sqrt(float64(w.Width))
	for i := range head {
		head[i] = float32((2*rng.Float64() - 1) * bound)
	}
	params = append(params,
		&optim.Param{Name: HeadWeight, Shape: []int64{int64(C), int64(w.Width)}, Data: head},
		&optim.Param{Name: HeadSigma, Shape: []int64{1}, Data: []float32{cfg.Recipe.Sigma}})
	for name, v := range cfg.InitParams {
		found := false
		for _, p := range params {
			if p.Name == name {
				if len(v) != len(p.Data) {
					return nil, fmt.Errorf("initial value of %s has %d values, the parameter has shape %v", name, len(v), p.Shape)
				}
				p.Data = append([]float32(nil), v...)
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("initial value given for %q, which %s does not train", name, cfg.Method.Name)
		}
	}

	epochs := cfg.Recipe.EpochsFor(train.Len())
	perEpoch := (train.Len() + cfg.Recipe.Batch - 1) / cfg.Recipe.Batch
	opt, err := optim.New(cfg.Recipe.Optimizer(perEpoch, epochs),
		optim.Group{Name: "adapt", Params: params, LR: cfg.Recipe.LR, WeightDecay: cfg.Recipe.WeightDecay})
	if err != nil {
		return nil, err
	}
	res := &Result{Specs: specs, Epochs: epochs}
	start, skip := 0, 0
	if cfg.Resume && cfg.Checkpoint != "" {
		if _, err := os.Stat(cfg.Checkpoint); err == nil {
			hist, done, err := loadCheckpoint(cfg.Checkpoint, opt, cfg)
			if err != nil {
				return nil, err
			}
			res.History = hist
			start, skip = int(opt.Epochs()), done
		}
	}

	r := &runner{cfg: cfg, sess: sess, evalSess: evalSess, params: params, opt: opt, classes: C, per: 3 * cfg.Train.Size() * cfg.Train.Size(), skip: skip}
	for e := start; e < epochs; e++ {
		st, err := r.epoch(ctx, train, held, e, epochs, perEpoch*epochs)
		if err != nil {
			if errors.Is(err, context.Canceled) && cfg.Checkpoint != "" && r.stepsRun > 0 {
				// Stopped mid-epoch: checkpoint the state after the last
				// complete step; a resume skips the epoch's first steps
				// (the epoch's order and augmentation are fixed by the seed).
				if err := saveCheckpoint(cfg.Checkpoint, opt, cfg, res.History, r.stepsThisEpoch); err != nil {
					return nil, err
				}
				return nil, fmt.Errorf("%w (stopped at step %d of epoch %d; %s holds that state: --resume continues there)", err, r.stepsThisEpoch, e+1, cfg.Checkpoint)
			}
			return nil, err
		}
		opt.EndEpoch()
		res.History = append(res.History, st)
		if cfg.Checkpoint != "" {
			if err := saveCheckpoint(cfg.Checkpoint, opt, cfg, res.History, 0); err != nil {
				return nil, err
			}
		}
	}
	res.Params = map[string]optim.Param{}
	for _, p := range params[:len(specs)] {
		res.Params[p.Name] = *p
	}
	res.Head = params[len(specs)].Data
	res.Sigma = params[len(specs)+1].Data[0]
	res.Steps = int(opt.Steps())
	return res, nil
}

type runner struct {
	cfg            Config
	sess, evalSess *ort.Session
	params         []*optim.Param
	opt            *optim.Optimizer
	classes, per   int
	stepsThisEpoch int // steps of the current epoch done, resumed ones included
	stepsRun       int // steps this call of epoch ran
	skip           int // steps of the first epoch done before a resume
}

func (r *runner) feeds(b *Batch) []ort.Tensor {
	n := int64(b.N())
	in := []ort.Tensor{{Shape: []int64{n, 3, int64(r.cfg.Train.Size()), int64(r.cfg.Train.Size())}, F32: b.X}}
	for _, p := range r.params {
		in = append(in, ort.Tensor{Shape: p.Shape, F32: p.Data})
	}
	return append(in, ort.Tensor{Shape: []int64{n}, I64: b.Labels})
}

// Correct counts the rows of logits [N,C] whose arg-max is the label.
func Correct(logits []float32, labels []int64, C int) int {
	k := 0
	for i, y := range labels {
		best := 0
		for c := 1; c < C; c++ {
			if logits[i*C+c] > logits[i*C+best] {
				best = c
			}
		}
		if int64(best) == y {
			k++
		}
	}
	return k
}

func (r *runner) epoch(ctx context.Context, train, held *Dataset, e, epochs, totalSteps int) (EpochStats, error) {
	st := EpochStats{Epoch: e + 1, HeldLoss: math.NaN(), HeldAcc: math.NaN()}
	t0 := time.Now()
	r.stepsThisEpoch, r.stepsRun = 0, 0
	order := EpochOrder(train.Len(), r.cfg.Seed, e, !r.cfg.NoShuffle)
	if r.skip > 0 {
		order = order[min(len(order), r.skip*r.cfg.Recipe.Batch):]
		r.stepsThisEpoch, r.skip = r.skip, 0
	}
	batches, berr := Batches(ctx, train, order, r.cfg.Recipe.Batch, false, r.cfg.Train, r.cfg.Seed, e, r.cfg.Workers)
	var lossSum float64
	var seen, right int
	for b := range batches {
		if err := ctx.Err(); err != nil {
			drain(batches)
			return st, err
		}
		out, err := r.sess.Run(r.feeds(b))
		if err != nil {
			drain(batches)
			return st, err
		}
		loss := float64(out[0].F32[0])
		if math.IsNaN(loss) || math.IsInf(loss, 0) {
			drain(batches)
			return st, fmt.Errorf("the loss is %v at step %d (epoch %d); stopped, the last checkpoint holds the state after epoch %d — lower the learning rate (--set lr=…)", loss, r.opt.Steps()+1, e+1, e)
		}
		grads := map[string][]float32{}
		for i, p := range r.params {
			grads[p.Name] = out[2+i].F32
		}
		info, err := r.opt.Step(grads)
		if err != nil {
			drain(batches)
			return st, err
		}
		r.stepsThisEpoch++
		r.stepsRun++
		st.GradNorm = info.GradNorm
		n := b.N()
		lossSum += loss * float64(n)
		seen += n
		right += Correct(out[1].F32, b.Labels, r.classes)
		if r.cfg.Progress != nil {
			r.cfg.Progress(Progress{Epoch: e + 1, Epochs: epochs, Step: int(r.opt.Steps()), Steps: totalSteps,
				Loss: lossSum / float64(seen), Accuracy: 100 * float64(right) / float64(seen),
				ImagesPerSecond: float64(seen) / time.Since(t0).Seconds()})
		}
	}
	if err := berr(); err != nil {
		return st, err
	}
	if err := ctx.Err(); err != nil {
		return st, err
	}
	st.TrainLoss, st.TrainAcc = lossSum/float64(max(seen, 1)), 100*float64(right)/float64(max(seen, 1))
	st.LearningRate = r.opt.LR(0)
	if r.evalSess != nil {
		l, a, err := r.evaluate(ctx, held)
		if err != nil {
			return st, err
		}
		st.HeldLoss, st.HeldAcc = l, a
	}
	st.Seconds = time.Since(t0).Seconds()
	if r.cfg.Progress != nil {
		p := Progress{Epoch: e + 1, Epochs: epochs, Step: int(r.opt.Steps()), Steps: totalSteps, Loss: st.TrainLoss,
			Accuracy: st.TrainAcc, ImagesPerSecond: float64(seen) / st.Seconds, EpochDone: true}
		if r.evalSess != nil {
			p.HeldOut = &st
		}
		r.cfg.Progress(p)
	}
	return st, nil
}

func (r *runner) evaluate(ctx context.Context, held *Dataset) (loss, acc float64, err error) {
	rows := EpochOrder(held.Len(), 0, 0, false)
	batches, berr := Batches(ctx, held, rows, r.cfg.Recipe.Batch, false, r.cfg.Eval, 0, 0, r.cfg.Workers)
	var sum float64
	var n, right int
	for b := range batches {
		out, err := r.evalSess.Run(r.feeds(b))
		if err != nil {
			drain(batches)
			return 0, 0, err
		}
		sum += float64(out[0].F32[0]) * float64(b.N())
		n += b.N()
		right += Correct(out[1].F32, b.Labels, r.classes)
	}
	if err := berr(); err != nil {
		return 0, 0, err
	}
	return sum / float64(max(n, 1)), 100 * float64(right) / float64(max(n, 1)), nil
}

func drain(c <-chan *Batch) {
	for range c {
	}
}

// forwardGraph is the training graph without gradients (held-out loss and
// accuracy): same inputs, outputs loss and logits.
func forwardGraph(w *vit.Weights, method Method, classes int) ([]byte, error) {
	m, err := withCosineHead(w, method, classes)
	if err != nil {
		return nil, err
	}
	m.Graph.Output = []*onnxpb.ValueInfoProto{
		models.ValueInfo(LossOutput, onnxpb.TensorProto_FLOAT, 1),
		models.ValueInfo(LogitsOutput, onnxpb.TensorProto_FLOAT, -1, int64(classes)),
	}
	return proto.MarshalOptions{Deterministic: true}.Marshal(m)
}

func sameClasses(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Checkpoint metadata keys.
const (
	metaFormat      = "format"
	checkpointFmt   = "cl.tune-checkpoint/1"
	metaMethod      = "tune.method"
	metaRecipe      = "tune.recipe"
	metaSeed        = "tune.seed"
	metaFingerprint = "tune.weights"
	metaEpochSteps  = "tune.epoch_steps"
)

func recipeJSON(r Recipe) string {
	b, _ := json.Marshal(r)
	return string(b)
}

// saveCheckpoint writes the state; epochSteps > 0 marks a checkpoint taken
// after that many steps of the epoch following hist.
func saveCheckpoint(path string, opt *optim.Optimizer, cfg Config, hist []EpochStats, epochSteps int) error {
	f := safetensors.New()
	if err := opt.AddTo(f, ""); err != nil {
		return err
	}
	f.Metadata[metaFormat] = checkpointFmt
	f.Metadata[metaMethod] = cfg.Method.Name
	f.Metadata[metaRecipe] = recipeJSON(cfg.Recipe)
	f.Metadata[metaEpochSteps] = strconv.Itoa(epochSteps)
	f.Metadata[metaSeed] = strconv.FormatUint(cfg.Seed, 10)
	f.Metadata[metaFingerprint] = cfg.Fingerprint
	h := make([]float64, 0, 4*len(hist))
	for _, s := range hist {
		h = append(h, s.TrainLoss, s.TrainAcc, s.HeldLoss, s.HeldAcc)
	}
	f.Tensors["history"] = safetensors.FromFloat64s([]int64{int64(len(hist)), 4}, h)
	if err := f.WriteFile(path); err != nil {
		return fmt.Errorf("writing checkpoint: %w", err)
	}
	return nil
}

func loadCheckpoint(path string, opt *optim.Optimizer, cfg Config) ([]EpochStats, int, error) {
	f, err := safetensors.ReadFile(path)
	if err != nil {
		return nil, 0, fmt.Errorf("reading checkpoint: %w", err)
	}
	md := f.Metadata
	if md[metaFormat] != checkpointFmt {
		return nil, 0, fmt.Errorf("%s is not a cl tune checkpoint (format %q)", path, md[metaFormat])
	}
	for _, c := range []struct{ key, want, what string }{
		{metaMethod, cfg.Method.Name, "method"},
		{metaRecipe, recipeJSON(cfg.Recipe), "recipe"},
		{metaSeed, strconv.FormatUint(cfg.Seed, 10), "seed"},
		{metaFingerprint, cfg.Fingerprint, "pre-trained weights"},
	} {
		if md[c.key] != c.want {
			return nil, 0, fmt.Errorf("checkpoint %s was made with %s %s, this run uses %s: resume only the same run (or remove the checkpoint)", path, c.what, md[c.key], c.want)
		}
	}
	done, err := strconv.Atoi(md[metaEpochSteps])
	if err != nil || done < 0 {
		return nil, 0, fmt.Errorf("checkpoint %s: bad %s %q", path, metaEpochSteps, md[metaEpochSteps])
	}
	if err := opt.RestoreFrom(f, "", path); err != nil {
		return nil, 0, err
	}
	var hist []EpochStats
	if t, err := f.Get("history", safetensors.F64, 2); err == nil {
		v := t.Float64s()
		for i := 0; i+3 < len(v); i += 4 {
			hist = append(hist, EpochStats{Epoch: i/4 + 1, TrainLoss: v[i], TrainAcc: v[i+1], HeldLoss: v[i+2], HeldAcc: v[i+3]})
		}
	}
	return hist, done, nil
}

// BakedWeights returns the trained parameters as the safetensors file that
// vit.Options.Bake takes.
func (r *Result) BakedWeights() *safetensors.File {
	f := safetensors.New()
	for _, s := range r.Specs {
		p := r.Params[s.Name]
		f.Tensors[s.Name] = safetensors.FromFloat32s(p.Shape, p.Data)
	}
	return f
}

// Bake builds the adapted backbone: method's variant of w with the trained
// parameters as initializers (one image input, features output).
func (r *Result) Bake(w *vit.Weights, method Method) (*onnxpb.ModelProto, error) {
	opt := method.vitOptions()
	opt.Bake = r.BakedWeights()
	return vit.Build(w, opt)
}

// SaveParams writes the trained variant parameters (and the head's σ as
// metadata) atomically: the file LoadResult reads back and vit.Options.Bake
// takes.
func (r *Result) SaveParams(path string, meta map[string]string) error {
	f := r.BakedWeights()
	for k, v := range meta {
		f.Metadata[k] = v
	}
	f.Metadata["tune.sigma"] = strconv.FormatFloat(float64(r.Sigma), 'g', -1, 32)
	f.Metadata["tune.steps"] = strconv.Itoa(r.Steps)
	return f.WriteFile(path)
}

// LoadResult reads parameters written by SaveParams for method's variant of
// w, checking every name and shape.
func LoadResult(path string, w *vit.Weights, method Method) (*Result, error) {
	f, err := safetensors.ReadFile(path)
	if err != nil {
		return nil, err
	}
	nopt, err := vit.NormalizedOptions(w.Config, method.vitOptions())
	if err != nil {
		return nil, err
	}
	res := &Result{Specs: vit.ParamSpecs(w.Config, nopt), Params: map[string]optim.Param{}}
	for _, s := range res.Specs {
		t, err := f.Get(s.Name, safetensors.F32, len(s.Shape))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		for i, d := range s.Shape {
			if t.Shape[i] != int64(d) {
				return nil, fmt.Errorf("%s: %s has shape %v, %s needs %v", path, s.Name, t.Shape, method.Name, s.Shape)
			}
		}
		res.Params[s.Name] = optim.Param{Name: s.Name, Shape: t.Shape, Data: t.Float32s()}
	}
	if sg, err := strconv.ParseFloat(f.Metadata["tune.sigma"], 32); err == nil {
		res.Sigma = float32(sg)
	}
	res.Steps, _ = strconv.Atoi(f.Metadata["tune.steps"])
	return res, nil
}
