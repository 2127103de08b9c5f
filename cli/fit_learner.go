package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/cl-dev/cl/extract/data"
	"github.com/cl-dev/cl/internal/atomicfile"
	"github.com/cl-dev/cl/learners"
	"github.com/cl-dev/cl/protocol"
	"github.com/cl-dev/cl/tune"
)

// `cl fit --learner`: one stage of a learner that trains in the ViT (l2p,
// dualprompt, coda-prompt, ease, aper-*, ranpac-phase1) from images, kept
// in a learner file.

// learnerImageFlags are the flags of a command that runs a learner file on
// images: learnerFlags(what), --data (images: what the images are, as
// "labelled test images"), more, and the ONNX Runtime flags.
func learnerImageFlags(what, images string, more ...cli.Flag) []cli.Flag {
	fl := append(learnerFlags(what), &cli.StringFlag{Name: "data", Usage: "with --learner: " + images + " `SPEC` (" + data.Specs + ")"})
	return append(append(fl, more...), ortFlags()...)
}

// fitLearnerFlags are fit's flags for learner files.
func fitLearnerFlags() []cli.Flag {
	return learnerImageFlags("to create, or to load and teach the next stage", "labelled training images",
		&cli.IntFlag{Name: "init", Usage: "with --learner: `N` classes in the first stage (0 = --inc), as cl bench"},
		&cli.IntFlag{Name: "inc", Value: 10, Usage: "with --learner: `N` classes per later stage"},
		&cli.Int64Flag{Name: "seed", Value: 1993, Usage: "with --learner: class-order seed `N` (numpy legacy MT19937, as cl bench), used when the learner file is created"},
		&cli.BoolFlag{Name: "no-shuffle", Usage: "with --learner: classes in --data's order when the learner file is created"},
		&cli.StringFlag{Name: "classes", Usage: "with --learner: learn these `NAMES` (comma-separated) as the next stage instead of the next stage of --init/--inc"},
		&cli.IntFlag{Name: "per-class", Usage: "with --learner: at most `N` training images per class (0 = all)"},
		&cli.Uint64Flag{Name: "train-seed", Value: 1, Usage: "with --learner: seed `N` of training (initialisation, shuffling, augmentation), as cl bench; later stages default to the seed the file records"},
	)
}

// fitLearnerOptions is everything `cl fit --learner` needs.
type fitLearnerOptions struct {
	Method, Learner, Data string
	Backbone              learnerBackbone
	Init, Inc             int
	Seed                  uint32
	Shuffle               bool
	Classes               []string // explicit stage; nil = next stage of Init/Inc
	PerClass              int
	TrainSeed             uint64
	TrainSeedSet          bool // --train-seed given (else a file's recorded seed is used)
	Options               [][2]string
}

func fitLearnerFrom(c *cli.Context) error {
	if err := requireFlags(c, "learner", "data"); err != nil {
		return err
	}
	if c.IsSet("features") || c.IsSet("head") {
		return usageErrorf("give either a head (--features, --head) or a learner (--learner, --weights, --data), not both")
	}
	if c.Bool("allow-repeats") {
		return usageErrorf("--allow-repeats is for heads: a learner learns every class in one stage (its classes must be new)")
	}
	if c.Args().Present() {
		return usageErrorf("fit takes no arguments (got %q)", c.Args().First())
	}
	b, err := learnerBackboneFrom(c)
	if err != nil {
		return err
	}
	seed := c.Int64("seed")
	if seed < 0 || seed > 1<<32-1 {
		return usageErrorf("--seed %d: must be in [0, 2³²)", seed)
	}
	for _, f := range []string{"init", "per-class"} {
		if c.Int(f) < 0 {
			return usageErrorf("--%s %d: must be ≥ 0", f, c.Int(f))
		}
	}
	o := fitLearnerOptions{Method: strings.ToLower(c.String("method")), Learner: c.String("learner"), Data: c.String("data"),
		Backbone: b, Init: c.Int("init"), Inc: c.Int("inc"), Seed: uint32(seed), Shuffle: !c.Bool("no-shuffle"),
		PerClass: c.Int("per-class"), TrainSeed: c.Uint64("train-seed"), TrainSeedSet: c.IsSet("train-seed"), Options: setPairs(c)}
	if s := c.String("classes"); s != "" {
		for _, n := range strings.Split(s, ",") {
			if n = strings.TrimSpace(n); n != "" {
				o.Classes = append(o.Classes, n)
			}
		}
		if len(o.Classes) == 0 {
			return usageErrorf("--classes %q names no class", s)
		}
		if c.IsSet("init") || c.IsSet("inc") {
			return usageErrorf("give --classes or --init/--inc, not both")
		}
	}
	return runFitLearner(c.Context, o, c.App.Writer, c.App.ErrWriter)
}

func runFitLearner(ctx context.Context, o fitLearnerOptions, stdout, stderr io.Writer) error {
	log := newLogger(stderr)
	lock, err := lockForWrite(ctx, "--learner", o.Learner, stderr)
	if err != nil {
		return err
	}
	defer lock.Release()
	_, statErr := os.Stat(o.Learner)
	exists := statErr == nil
	if statErr != nil && !errors.Is(statErr, fs.ErrNotExist) {
		return fmt.Errorf("--learner: %w", statErr)
	}
	// What the file (or the new learner) is, before the weights and images
	// are read.
	var fi learners.FileInfo
	if exists {
		if fi, err = learners.ReadFileInfo(o.Learner); err != nil {
			return fmt.Errorf("--learner: %w", err)
		}
		if o.Method != "" && o.Method != fi.Method {
			return usageErrorf("--method %s: %s holds a %s learner; fit it without --method (or with --method %s), or choose another --learner", o.Method, o.Learner, fi.Method, fi.Method)
		}
		if len(o.Options) > 0 {
			return usageErrorf("--set: a learner's options are fixed when its file is created and %s already exists; write a new --learner to change them", o.Learner)
		}
		if fi.HasTrainSeed { // later stages keep the file's seed, as one cl bench run
			if o.TrainSeedSet && o.TrainSeed != fi.TrainSeed {
				return usageErrorf("--train-seed %d: %s was trained with --train-seed %d, and its next stages must use it to equal one cl bench run; give --train-seed %d or leave it out", o.TrainSeed, o.Learner, fi.TrainSeed, fi.TrainSeed)
			}
			o.TrainSeed = fi.TrainSeed
		}
	} else {
		if o.Method == "" {
			return usageErrorf("--method is required to create %s (one of %s)", o.Learner, strings.Join(learners.StoredNames(), ", "))
		}
		if !learners.Stored(o.Method) {
			if _, err := learners.Lookup(o.Method); err != nil {
				return usageErrorf("--method: %v", err)
			}
			return usageErrorf("--method %s keeps no learner file: --learner is for %s; fit frozen heads with --features and --head", o.Method, strings.Join(learners.StoredNames(), ", "))
		}
		if err := atomicfile.CheckWritable(o.Learner); err != nil {
			return fmt.Errorf("--learner: %w", err)
		}
	}
	src, err := data.Open(o.Data)
	if err != nil {
		return usageErrorf("--data: %v", err)
	}
	defer src.Close()
	if !data.Labelled(src) {
		return usageErrorf("--data %s is unlabelled: a learner learns from labelled images", o.Data)
	}
	names := fi.Names
	if !exists {
		order, err := protocol.ClassOrder(len(src.Classes()), o.Seed, o.Shuffle)
		if err != nil {
			return err
		}
		for _, c := range order {
			names = append(names, src.Classes()[c])
		}
		fi.Method = o.Method
	}
	stage, err := nextStage(o, fi, names)
	if err != nil {
		return err
	}
	native := map[string]int{}
	for c, n := range src.Classes() {
		native[n] = c
	}
	var cls []int
	for _, k := range stage {
		c, ok := native[names[k]]
		if !ok {
			return fmt.Errorf("--data %s has no class %q, which the learner's stage %d learns; give images of every class of the stage", o.Data, names[k], fi.Stages+1)
		}
		cls = append(cls, c)
	}

	// The learner: created or read (weights checked against its file).
	var l learners.Learner
	if exists {
		if l, _, _, err = openLearner(o.Learner, o.Backbone, o.TrainSeed, log); err != nil {
			return err
		}
	} else {
		env, err := o.Backbone.env(o.TrainSeed, log)
		if err != nil {
			return err
		}
		spec, _ := learners.Lookup(o.Method)
		opts := map[string]string{}
		for _, p := range o.Options {
			opts[p[0]] = p[1]
		}
		if l, err = spec.New(env, opts); err != nil {
			return UsageError{fmt.Errorf("--set: %w", err)}
		}
	}
	defer learners.Close(l)

	d, err := tune.LoadClasses(ctx, src, cls, o.PerClass)
	if err != nil {
		return fmt.Errorf("--data: %w", err)
	}
	for i, y := range d.Labels {
		d.Labels[i] = stage[y]
	}
	d.Classes, d.Native = names, nil
	s := learners.Stage{Index: fi.Stages, Classes: slices.Sorted(slices.Values(stage)), Names: names, Images: d, Labels: d.Labels, IDs: d.IDs}
	log.Info("learning", "learner", o.Learner, "method", l.Method(), "stage", s.Index+1, "classes", stageNames(names, stage), "images", d.Len())
	err = interruptible(ctx, o.Learner, func() error {
		if err := l.Learn(ctx, s); err != nil {
			return fmt.Errorf("learning --data %s: %w", o.Data, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := l.Save(o.Learner); err != nil {
		return err
	}
	verb := "created"
	if exists {
		verb = "updated"
	}
	fmt.Fprintf(stdout, "%s %s (%s): learned stage %d (%s, %s); the learner now scores %s of %d\n",
		verb, o.Learner, l.Method(), s.Index+1, countOf(len(stage), "class", "classes"), countOf(d.Len(), "image", "images"),
		countOf(len(fi.Learned)+len(stage), "class", "classes"), len(names))
	return nil
}

// nextStage returns the global labels (into names) of the stage to learn:
// --classes, or the next stage of the --init/--inc split of names. An
// explicit class the learner has already learned is refused here, before
// any image is read.
func nextStage(o fitLearnerOptions, fi learners.FileInfo, names []string) ([]int, error) {
	learned := map[int]bool{}
	for _, k := range fi.Learned {
		learned[k] = true
	}
	if o.Classes != nil {
		global := map[string]int{}
		for k, n := range names {
			global[n] = k
		}
		var out []int
		seen := map[int]bool{}
		for _, n := range o.Classes {
			k, ok := global[n]
			switch {
			case !ok:
				return nil, usageErrorf("--classes: %q is not a class of the learner's %d (%s), fixed by the --data of its first stage", n, len(names), strings.Join(names, ", "))
			case learned[k]:
				return nil, fmt.Errorf("--classes: %q was learned in an earlier stage of %s: %s assumes every stage brings new classes (%s); give the class to a new learner, or use a prototype head (cl fit --features --head)", n, o.Learner, fi.Method, stageAssumption(fi.Method))
			case seen[k]:
				return nil, usageErrorf("--classes: %q is given twice", n)
			}
			seen[k] = true
			out = append(out, k)
		}
		return out, nil
	}
	identity := make([]int, len(names))
	for i := range identity {
		identity[i] = i
	}
	split, err := protocol.NewSplit(identity, o.Init, o.Inc)
	if err != nil {
		return nil, usageErrorf("--init/--inc: %v", err)
	}
	t := fi.Stages
	if t >= split.Stages() {
		return nil, fmt.Errorf("%s has learned all %d classes of its label space in %d stages: there is no next stage", o.Learner, len(names), t)
	}
	lo, hi := split.Range(t)
	// The classes learned must be the first t stages of this split.
	for k := range names {
		if learned[k] != (k < lo) {
			return nil, fmt.Errorf("%s has learned %s, not the first %d stages of --init %d --inc %d (classes 1…%d of its order): give the --init/--inc it was created with, or name the stage with --classes",
				o.Learner, learnedNames(fi), t, o.Init, o.Inc, lo)
		}
	}
	var out []int
	for k := lo; k < hi; k++ {
		out = append(out, k)
	}
	return out, nil
}

func stageNames(names []string, stage []int) string {
	var s []string
	for _, k := range stage {
		s = append(s, names[k])
	}
	return strings.Join(s, ",")
}

// stageAssumption says why a learner file refuses a class it has learned.
func stageAssumption(method string) string {
	if strings.HasPrefix(method, "aper-") || method == "ranpac-phase1" {
		return "cl fit --learner learns the stages of a split of the classes; the adaptation ran on the first stage only"
	}
	return "the old classes' logits are masked while a stage trains"
}
