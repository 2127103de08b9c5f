package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/cl-dev/cl/extract/data"
	"github.com/cl-dev/cl/features"
	"github.com/cl-dev/cl/heads"
	"github.com/cl-dev/cl/internal/atomicfile"
	"github.com/cl-dev/cl/learners"
	"github.com/cl-dev/cl/protocol"
	"github.com/cl-dev/cl/report"
)

func init() {
	register(&cli.Command{
		Name:         "bench",
		OnUsageError: onUsageError,
		Usage:        "run the class-incremental protocol (PILOT's B{init} Inc{inc} stages) over one or more heads",
		ArgsUsage:    " ",
		Description: "Every head learns the classes of each stage in turn and is evaluated on the test rows of all\n" +
			"classes seen so far; prints Ā (mean of the per-stage accuracy), A_B (last stage) and forgetting.\n" +
			"The class order is numpy's np.random.seed(seed); np.random.permutation(n), as PILOT. See docs/PROTOCOL.md.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "train", Usage: "training features `FILE` (F.safetensors, or F,G to join two files by sample id; required unless --data)"},
			&cli.StringFlag{Name: "test", Usage: "test features `FILE` (same model and preprocessing; F or F,G; required unless --test-data)"},
			&cli.StringFlag{Name: "method", Usage: "comma-separated `METHODS`: " + strings.Join(learners.Names(), ", ") + " (those that train need images: --weights, --data, --test-data)"},
			&cli.IntFlag{Name: "init", Value: 0, Usage: "`N` classes in the first stage (0 = same as --inc, i.e. \"B0\")"},
			&cli.IntFlag{Name: "inc", Value: 10, Usage: "`N` classes per later stage"},
			&cli.Int64Flag{Name: "seed", Value: 1993, Usage: "class-order seed `N` (numpy legacy MT19937)"},
			&cli.BoolFlag{Name: "no-shuffle", Usage: "keep the feature file's class order (PILOT shuffle: false)"},
			&cli.StringFlag{Name: "config", Usage: "a LAMDA-PILOT exps/*.json `FILE`: init_cls, increment, shuffle, seed, model_name, M"},
			setFlag("override a protocol key (init, inc, seed, shuffle, joint_lambda, joint_iterations) or a method option (key=value, or method.key=value for one method; repeatable)"),
			&cli.BoolFlag{Name: "joint", Usage: "also fit the joint (non-incremental) logistic-regression upper bound at every stage"},
			&cli.StringFlag{Name: "out", Usage: "write results.json, curve.csv and accuracy.png into folder `DIR` (created if missing)"},
			&cli.BoolFlag{Name: "json", Usage: "print the report as one JSON object instead of a table"},
			&cli.StringFlag{Name: "weights", Usage: "from images: the ViT checkpoint FILE (as cl models import) that methods which train adapt, and whose frozen features the other methods use"},
			&cli.IntFlag{Name: "heads", Usage: "from images: N attention heads of the checkpoint (0 = stored in .npz, else width/64)"},
			&cli.StringFlag{Name: "data", Usage: "from images: training images SPEC (" + data.Specs + ")"},
			&cli.StringFlag{Name: "test-data", Usage: "from images: test images SPEC"},
			&cli.IntFlag{Name: "per-class", Usage: "from images: at most N training images per class (0 = all)"},
			&cli.IntFlag{Name: "test-per-class", Usage: "from images: at most N test images per class (0 = all)"},
			&cli.Uint64Flag{Name: "train-seed", Value: 1, Usage: "from images: seed N of training (initialisation, shuffling, augmentation)"},
			&cli.IntFlag{Name: "workers", Value: 2, Usage: "from images: N goroutines decoding images"},
			&cli.StringFlag{Name: "cache", Usage: "from images: `DIR` caching the frozen features and first-stage adaptations (none = off)", DefaultText: "~/.cache/cl/features"},
		}, ortFlags()...),
		Action: func(c *cli.Context) error {
			if c.IsSet("data") || c.IsSet("weights") || c.IsSet("test-data") {
				return benchFromImages(c)
			}
			if err := requireFlags(c, "train", "test"); err != nil {
				return err
			}
			if c.Args().Present() {
				return usageErrorf("bench takes no arguments (got %q)", c.Args().First())
			}
			opts, err := benchOptionsFrom(c)
			if err != nil {
				return err
			}
			return runBench(c.Context, opts, c.App.Writer, c.App.ErrWriter)
		},
	})
}

// benchOptions is everything `cl bench` needs.
type benchOptions struct {
	Train, Test   string
	Specs         []heads.Spec
	MethodOptions []heads.Config
	Init, Inc     int
	Seed          uint32
	Shuffle       bool
	Out           string
	JSON          bool
	IgnoredPILOT  []string
}

// protocolKeys are the --set keys bench handles itself (PILOT spellings
// init_cls and increment included).
var protocolKeys = map[string]bool{
	"init": true, "inc": true, "seed": true, "shuffle": true, "init_cls": true, "increment": true,
}

// jointKeys are the old protocol spellings of the joint head's options.
var jointKeys = map[string]string{"joint_lambda": "joint.lambda", "joint_iterations": "joint.iterations"}

func benchOptionsFrom(c *cli.Context) (benchOptions, error) {
	o := benchOptions{Train: c.String("train"), Test: c.String("test"), Out: c.String("out"), JSON: c.Bool("json")}
	init, inc, seed, shuffle := c.Int("init"), c.Int("inc"), c.Int64("seed"), !c.Bool("no-shuffle")
	methods := c.String("method")
	var soft [][2]string
	softKeys := map[string]bool{}
	if path := c.String("config"); path != "" {
		pc, err := readPilotConfig(path)
		if err != nil {
			return benchOptions{}, UsageError{err}
		}
		if pc.Init != nil && !c.IsSet("init") {
			init = *pc.Init
		}
		if pc.Inc != nil && !c.IsSet("inc") {
			inc = *pc.Inc
		}
		if pc.Seed != nil && !c.IsSet("seed") {
			seed = *pc.Seed
		}
		if pc.Shuffle != nil && !c.IsSet("no-shuffle") {
			shuffle = *pc.Shuffle
		}
		if methods == "" {
			if pc.Method == "" {
				return benchOptions{}, usageErrorf("--config %s: model_name %q has no cl head; choose one with --method (%s)", path, pc.ModelName, strings.Join(heads.Methods(), ", "))
			}
			methods = pc.Method
		}
		soft = pc.Options
		for _, p := range soft {
			softKeys[p[0]] = true
		}
		o.IgnoredPILOT = pc.Ignored
	}
	if methods == "" {
		return benchOptions{}, usageErrorf("--method is required (one or more of %s), or a --config whose model_name names one", strings.Join(heads.Methods(), ", "))
	}
	if c.Bool("joint") && !slices.Contains(strings.Split(strings.ToLower(strings.ReplaceAll(methods, " ", "")), ","), "joint") {
		methods += ",joint" // --joint: the joint head, last
	}
	specs, err := methodSpecs(methods)
	if err != nil {
		return benchOptions{}, err
	}
	for _, s := range specs {
		if s.Name == "aper" && (!strings.Contains(o.Train, ",") || !strings.Contains(o.Test, ",")) {
			return benchOptions{}, aperNeedsTwo("--train and --test")
		}
	}
	o.Specs = specs
	sets := slices.Clone(setPairs(c))
	for i, p := range sets {
		if k, ok := jointKeys[p[0]]; ok {
			sets[i][0] = k // joint_lambda=… is joint.lambda=… (needs --joint)
		}
	}
	for _, p := range sets {
		k, v := p[0], p[1]
		bad := func(want string) error { return usageErrorf("--set %s=%s: want %s", k, v, want) }
		switch k {
		case "init", "init_cls":
			if init, err = strconv.Atoi(v); err != nil {
				return benchOptions{}, bad("an integer")
			}
		case "inc", "increment":
			if inc, err = strconv.Atoi(v); err != nil {
				return benchOptions{}, bad("an integer")
			}
		case "seed":
			if seed, err = strconv.ParseInt(v, 10, 64); err != nil {
				return benchOptions{}, bad("an integer")
			}
		case "shuffle":
			if shuffle, err = strconv.ParseBool(v); err != nil {
				return benchOptions{}, bad("true or false")
			}
		}
	}
	// Method options: config values first, --set overrides.
	per, ignored, err := routeOptions(specs, append(append([][2]string(nil), soft...), sets...), protocolKeys, softKeys)
	if err != nil {
		return benchOptions{}, err
	}
	o.MethodOptions = per
	o.IgnoredPILOT = append(o.IgnoredPILOT, ignored...)
	if init < 0 || inc <= 0 {
		return benchOptions{}, usageErrorf("--init %d / --inc %d: need init ≥ 0 and inc ≥ 1", init, inc)
	}
	if seed < 0 || seed > 1<<32-1 {
		return benchOptions{}, usageErrorf("--seed %d: numpy seeds are in [0, 2^32−1]", seed)
	}
	o.Init, o.Inc, o.Seed, o.Shuffle = init, inc, uint32(seed), shuffle
	return o, nil
}

// benchData reads the train and test features and expresses the test labels
// in the training file's class list.
func benchData(o benchOptions) (train, test *features.Set, testLabels []int, err error) {
	if train, err = readFeatures("train", o.Train); err != nil {
		return nil, nil, nil, err
	}
	if test, err = readFeatures("test", o.Test); err != nil {
		return nil, nil, nil, err
	}
	if !features.Same(train.Space(), test.Space()) {
		return nil, nil, nil, fmt.Errorf("--test %s does not match --train %s: the test features come from %s, the training features from %s; extract both with the same model and preprocessing",
			o.Test, o.Train, test.Space(), train.Space())
	}
	if test.D != train.D {
		return nil, nil, nil, fmt.Errorf("--test %s has dimension %d but --train %s has %d", o.Test, test.D, o.Train, train.D)
	}
	index, _ := features.MapClasses(train.Classes, test.Classes)
	testLabels = make([]int, test.N)
	for i, y := range test.Labels {
		k := index[y]
		if k >= len(train.Classes) {
			return nil, nil, nil, fmt.Errorf("--test %s: row %d has class %q, which the training features %s do not list", o.Test, i, test.Classes[y], o.Train)
		}
		testLabels[i] = k
	}
	return train, test, testLabels, nil
}

// runBench runs `cl bench`: the protocol over every selected head, then
// prints and optionally writes the report.
func runBench(ctx context.Context, o benchOptions, stdout, stderr io.Writer) error {
	log := newLogger(stderr)
	methods := make([]protocol.Method, len(o.Specs))
	for i, spec := range o.Specs {
		opts := o.MethodOptions[i]
		if _, err := spec.New(opts); err != nil { // bad option values fail before any reading
			return UsageError{fmt.Errorf("--set: %w", err)}
		}
		methods[i] = protocol.Method{Name: spec.Name, New: func() (heads.Head, error) {
			h, err := spec.New(opts)
			if err == nil {
				headProgress(h, stderr)
			}
			return h, err
		}}
	}
	if len(o.IgnoredPILOT) > 0 {
		log.Info("PILOT config keys with no effect on frozen-feature heads", "keys", strings.Join(o.IgnoredPILOT, ","))
	}
	if o.Out != "" {
		if err := os.MkdirAll(o.Out, 0o755); err != nil {
			return fmt.Errorf("--out: %w", err)
		}
		if err := atomicfile.CheckWritable(filepath.Join(o.Out, "results.json")); err != nil {
			return fmt.Errorf("--out: %w", err)
		}
	}
	train, test, testLabels, err := benchData(o)
	if err != nil {
		return err
	}
	log.Info("features", "train", o.Train, "train_rows", train.N, "test", o.Test, "test_rows", test.N,
		"dim", train.D, "classes", len(train.Classes))
	cfg := protocol.Config{
		Classes: len(train.Classes), ClassNames: train.Classes,
		Init: o.Init, Inc: o.Inc, Seed: o.Seed, Shuffle: o.Shuffle, Log: log,
	}
	trd := protocol.Data{X: train.X, D: train.D, Labels: train.Labels}
	ted := protocol.Data{X: test.X, D: test.D, Labels: testLabels}
	var rep *protocol.Report
	err = interruptible(ctx, o.Out, func() error {
		var err error
		rep, err = protocol.Run(ctx, cfg, trd, ted, methods)
		return err
	})
	if err != nil {
		return err
	}
	return writeBenchReport(rep, o.Out, o.JSON, stdout, log)
}

// writeBenchReport writes the report's files into dir (when not "") and
// prints it: JSON or the table.
func writeBenchReport(rep *protocol.Report, dir string, asJSON bool, stdout io.Writer, log *slog.Logger) error {
	if dir != "" {
		if err := report.WriteDir(dir, rep); err != nil {
			return err
		}
		log.Info("wrote "+strings.Join(report.Files, ", "), "dir", dir)
	}
	if asJSON {
		return report.JSON(stdout, rep)
	}
	return report.Table(stdout, rep)
}
