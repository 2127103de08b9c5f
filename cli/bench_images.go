package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/cl-dev/cl/extract/data"
	"github.com/cl-dev/cl/internal/atomicfile"
	"github.com/cl-dev/cl/internal/safetensors"
	"github.com/cl-dev/cl/learners"
	"github.com/cl-dev/cl/models/ort"
	"github.com/cl-dev/cl/models/vit"
	"github.com/cl-dev/cl/protocol"
	"github.com/cl-dev/cl/tune"
	"github.com/urfave/cli/v2"
)

// benchImagesOptions is `cl bench` run from images: learners that train
// (aper-*, ranpac-phase1, the prompt methods) next to frozen heads, which
// get the pre-trained backbone's features (cached on disk).
type benchImagesOptions struct {
	Weights, Data, TestData string
	Heads                   int
	Methods                 []string
	Sets                    [][2]string
	PerClass, TestPerClass  int
	Init, Inc               int
	Seed                    uint32
	Shuffle                 bool
	TrainSeed               uint64
	Workers                 int
	Cache                   string // "" = default, "none" = off
	Session                 ort.SessionOptions
	Out                     string
	JSON                    bool
}

// defaultFeatureCache is ${CL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cl}/features.
func defaultFeatureCache() string {
	if d := os.Getenv("CL_CACHE_DIR"); d != "" {
		return filepath.Join(d, "features")
	}
	base := os.Getenv("XDG_CACHE_HOME")
	if base == "" {
		base = filepath.Join(os.Getenv("HOME"), ".cache")
	}
	return filepath.Join(base, "cl", "features")
}

// learnerOptions hands every learner the --set pairs it knows: key=value
// goes to every selected method with that option, method.key=value to one.
// A key no selected method knows is a usage error.
func learnerOptions(methods []string, sets [][2]string) ([]learners.BenchMethod, error) {
	out := make([]learners.BenchMethod, len(methods))
	used := make([]bool, len(sets))
	for i, m := range methods {
		spec, err := learners.Lookup(m)
		if err != nil {
			return nil, usageErrorf("--method: %v", err)
		}
		out[i] = learners.BenchMethod{Name: m, Options: map[string]string{}}
		for j, p := range sets {
			key := p[0]
			if pre, rest, ok := strings.Cut(key, "."); ok && pre == m {
				key = rest
			} else if ok && isLearner(pre) {
				continue // another method's option
			}
			if _, ok := spec.Options[key]; ok {
				out[i].Options[key] = p[1]
				used[j] = true
			}
		}
	}
	for j, p := range sets {
		if !used[j] {
			return nil, usageErrorf("--set %s=%s: no selected method has the option %q", p[0], p[1], p[0])
		}
	}
	return out, nil
}

func isLearner(name string) bool {
	_, err := learners.Lookup(name)
	return err == nil
}

func runBenchImages(ctx context.Context, o benchImagesOptions, stdout, stderr io.Writer) error {
	log := newLogger(stderr)
	methods, err := learnerOptions(o.Methods, o.Sets)
	if err != nil {
		return err
	}
	if o.Out != "" { // before hours of training, not after
		if err := os.MkdirAll(o.Out, 0o755); err != nil {
			return fmt.Errorf("--out: %w", err)
		}
		if err := atomicfile.CheckWritable(filepath.Join(o.Out, "results.json")); err != nil {
			return fmt.Errorf("--out: %w", err)
		}
	}
	raw, err := os.ReadFile(o.Weights)
	if err != nil {
		return fmt.Errorf("--weights: %w", err)
	}
	sum := sha256.Sum256(raw)
	wsha := hex.EncodeToString(sum[:])
	w, err := vit.Parse(o.Weights, raw, o.Heads)
	if err != nil {
		return fmt.Errorf("--weights: %w", err)
	}
	raw = nil
	train, err := loadBenchImages(ctx, "--data", o.Data, o.PerClass)
	if err != nil {
		return err
	}
	test, err := loadBenchImages(ctx, "--test-data", o.TestData, o.TestPerClass)
	if err != nil {
		return err
	}
	if strings.Join(train.Classes, "\x00") != strings.Join(test.Classes, "\x00") {
		return fmt.Errorf("--data has classes %v but --test-data has %v: both must list the same classes in the same order", train.Classes, test.Classes)
	}
	order, err := protocol.ClassOrder(len(train.Classes), o.Seed, o.Shuffle)
	if err != nil {
		return err
	}
	split, err := protocol.NewSplit(order, o.Init, o.Inc)
	if err != nil {
		return usageErrorf("--init/--inc: %v", err)
	}

	// The frozen pre-trained backbone's features, for frozen heads and for
	// APER's pre-trained half; cached by weights, data and subset.
	plain, err := vit.Build(w, vit.Options{})
	if err != nil {
		return err
	}
	pb, err := proto.MarshalOptions{Deterministic: true}.Marshal(plain)
	if err != nil {
		return err
	}
	bb, err := ort.OpenData("pre-trained backbone", pb, ort.Options{ORTLib: o.Session.ORTLib, Device: o.Session.Device, Threads: o.Session.Threads})
	if err != nil {
		return err
	}
	defer bb.Close()
	cache := o.Cache
	if cache == "" {
		cache = defaultFeatureCache()
	}
	feats := func(what string, d *tune.Dataset, spec string, per int) ([]float32, error) {
		key := fmt.Sprintf("%s|%s|%d|%d|%s", wsha, spec, per, d.Len(), strings.Join(d.IDs, ","))
		h := sha256.Sum256([]byte(key))
		path := ""
		if cache != "none" {
			path = filepath.Join(cache, hex.EncodeToString(h[:12])+".safetensors")
			if f, err := safetensors.ReadFile(path); err == nil && f.Metadata["key"] == key {
				if t, err := f.Get("features", safetensors.F32, 2); err == nil && t.Shape[0] == int64(d.Len()) && t.Shape[1] == int64(bb.Dim()) {
					log.Info("frozen features from the cache", "data", what, "file", path)
					return t.Float32s(), nil
				}
			}
		}
		log.Info("extracting frozen features", "data", what, "images", d.Len())
		x, err := learners.Extract(ctx, bb, d, o.Workers)
		if err != nil {
			return nil, err
		}
		if path != "" {
			if err := os.MkdirAll(cache, 0o755); err == nil {
				f := safetensors.New()
				f.Metadata["key"] = key
				f.Tensors["features"] = safetensors.FromFloat32s([]int64{int64(d.Len()), int64(bb.Dim())}, x)
				if err := f.WriteFile(path); err != nil {
					log.Warn("feature cache not written", "err", err)
				}
			}
		}
		return x, nil
	}
	bd := learners.BenchData{Train: train, Test: test, Dim: bb.Dim()}
	if bd.TrainFeat, err = feats("--data", train, o.Data, o.PerClass); err != nil {
		return err
	}
	if bd.TestFeat, err = feats("--test-data", test, o.TestData, o.TestPerClass); err != nil {
		return err
	}
	cacheDir := cache
	if cache == "none" {
		cacheDir = ""
	}
	env := learners.Env{Weights: w, WeightsSHA256: wsha, Session: o.Session, Workers: o.Workers, Seed: o.TrainSeed,
		CacheDir: cacheDir,
		Log:      func(f string, a ...any) { log.Info(fmt.Sprintf(f, a...)) }}
	res, err := learners.Bench(ctx, env, split, bd, methods)
	if err != nil {
		return err
	}
	rep := &protocol.Report{ClassOrder: split.Order, Init: o.Init, Inc: o.Inc, Seed: o.Seed, Shuffle: o.Shuffle,
		Increments: split.Increments, TrainRows: train.Len(), TestRows: test.Len(), Methods: res}
	for _, c := range split.Order {
		rep.ClassNames = append(rep.ClassNames, train.Classes[c])
	}
	return writeBenchReport(rep, o.Out, o.JSON, stdout, log)
}

// loadBenchImages reads every class of a --data spec (at most per images
// per class when per > 0).
func loadBenchImages(ctx context.Context, flag, spec string, per int) (*tune.Dataset, error) {
	src, err := data.Open(spec)
	if err != nil {
		return nil, usageErrorf("%s: %v", flag, err)
	}
	defer src.Close()
	all := make([]int, len(src.Classes()))
	for i := range all {
		all[i] = i
	}
	d, err := tune.LoadClasses(ctx, src, all, per)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	return d, nil
}

// benchFromImages reads the flags of `cl bench` run from images.
func benchFromImages(c *cli.Context) error {
	if err := requireFlags(c, "weights", "data", "test-data", "method"); err != nil {
		return err
	}
	if c.IsSet("train") || c.IsSet("test") {
		return usageErrorf("give either feature files (--train, --test) or images (--weights, --data, --test-data), not both")
	}
	if c.Args().Present() {
		return usageErrorf("bench takes no arguments (got %q)", c.Args().First())
	}
	seed := c.Int64("seed")
	if seed < 0 || seed > 1<<32-1 {
		return usageErrorf("--seed %d: must be in [0, 2³²)", seed)
	}
	for _, f := range []string{"per-class", "test-per-class", "init"} {
		if c.Int(f) < 0 {
			return usageErrorf("--%s %d: must be ≥ 0", f, c.Int(f))
		}
	}
	if c.Int("workers") < 1 {
		return usageErrorf("--workers %d: must be ≥ 1", c.Int("workers"))
	}
	var methods []string
	for _, m := range strings.Split(c.String("method"), ",") {
		if m = strings.TrimSpace(m); m != "" {
			methods = append(methods, m)
		}
	}
	if c.Int("heads") < 0 {
		return usageErrorf("--heads %d: must be ≥ 0", c.Int("heads"))
	}
	o := benchImagesOptions{Weights: c.String("weights"), Heads: c.Int("heads"), Data: c.String("data"), TestData: c.String("test-data"),
		Methods: methods, Sets: setPairs(c), PerClass: c.Int("per-class"), TestPerClass: c.Int("test-per-class"),
		Init: c.Int("init"), Inc: c.Int("inc"), Seed: uint32(seed), Shuffle: !c.Bool("no-shuffle"), TrainSeed: c.Uint64("train-seed"),
		Workers: c.Int("workers"), Cache: c.String("cache"), Session: ort.SessionOptions{ORTLib: c.String("ort-lib"), Device: c.String("device"), Threads: c.Int("threads")},
		Out: c.String("out"), JSON: c.Bool("json")}
	return runBenchImages(c.Context, o, c.App.Writer, c.App.ErrWriter)
}
