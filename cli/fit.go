package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/cl-dev/cl/features"
	"github.com/cl-dev/cl/heads"
	"github.com/cl-dev/cl/internal/atomicfile"
	"github.com/cl-dev/cl/learners"
)

func init() {
	register(&cli.Command{
		Name:         "fit",
		OnUsageError: onUsageError,
		Usage:        "add the classes of a feature file to a head, or a stage of images to a learner (creating the file if needed)",
		ArgsUsage:    " ",
		Description: "Learns every row of --features into the head in --head and writes it back atomically. Class\n" +
			"names are matched with the head's list; new names are appended. Two feature files joined by a comma\n" +
			"are concatenated by sample id (APER: plain PTM features, adapted features). The head records\n" +
			"every learned row (sample id, class, content hash) in its ledger; rows whose sample it already\n" +
			"learned are refused unless --allow-repeats is given.\n\n" +
			"With --learner (l2p, dualprompt, coda-prompt, ease, aper-*, ranpac-phase1: methods that train\n" +
			"prompts, adapters, SSF or VPT tokens in the ViT of --weights) it learns the next stage from the images of --data: the stages of --init/--inc\n" +
			"over the class order of --seed, as cl bench, or the classes named by --classes. The first fit\n" +
			"creates the learner file and fixes its label space (the classes of --data) and options (--set);\n" +
			"each later fit loads it, learns the next stage and writes it back atomically. A stage's classes\n" +
			"must be new. docs/TRAINING.md.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "method", Usage: "`METHOD` of the head or learner to create: " + strings.Join(heads.Methods(), ", ") + "; with --learner " + strings.Join(learners.StoredNames(), ", ") + " (required to create, optional when the file exists)"},
			&cli.StringFlag{Name: "features", Usage: "training features `FILE` F.safetensors (or F,G for APER; required unless --learner)"},
			&cli.StringFlag{Name: "head", Usage: "head `FILE` to create or extend (H.safetensors; required unless --learner)"},
			setFlag("method option key=value when creating the head or learner (repeatable)"),
			&cli.BoolFlag{Name: "allow-repeats", Usage: "learn rows whose sample the head already learned (or that repeat in the file) again, counting them twice"},
		}, fitLearnerFlags()...),
		Action: func(c *cli.Context) error {
			if c.IsSet("learner") {
				return fitLearnerFrom(c)
			}
			if err := requireFlags(c, "features", "head"); err != nil {
				return err
			}
			if c.Args().Present() {
				return usageErrorf("fit takes no arguments (got %q)", c.Args().First())
			}
			o := fitOptions{Method: strings.ToLower(c.String("method")), Features: c.String("features"), Head: c.String("head"),
				AllowRepeats: c.Bool("allow-repeats")}
			o.Options = setPairs(c)
			return runFit(c.Context, o, c.App.Writer, c.App.ErrWriter)
		},
	})
}

// fitOptions is everything `cl fit` needs.
type fitOptions struct {
	Method, Features, Head string
	// AllowRepeats learns rows the head already learned again.
	AllowRepeats bool
	Options      [][2]string // --set key=value pairs, in order
}

// mapLabels expresses set's labels in the class list names (index = label),
// appending the set's class names that names lacks. It returns the mapped
// labels (one per row) and the extended list.
func mapLabels(names []string, set *features.Set) ([]int, []string) {
	remap, names := features.MapClasses(names, set.Classes)
	y := make([]int, set.N)
	for i, l := range set.Labels {
		y[i] = remap[l]
	}
	return y, names
}

func runFit(ctx context.Context, o fitOptions, stdout, stderr io.Writer) error {
	log := newLogger(stderr)
	lock, err := lockForWrite(ctx, "--head", o.Head, stderr)
	if err != nil {
		return err
	}
	defer lock.Release()
	var h heads.Head
	var info heads.Info
	_, statErr := os.Stat(o.Head)
	exists := statErr == nil
	if statErr != nil && !errors.Is(statErr, fs.ErrNotExist) {
		return fmt.Errorf("--head: %w", statErr)
	}
	if exists {
		var err error
		if h, info, err = heads.Load(o.Head); err != nil {
			return fmt.Errorf("--head: %w", err)
		}
		if o.Method != "" && o.Method != h.Method() {
			return usageErrorf("--method %s: %s is %s; fit it with --method %s or choose another --head", o.Method, o.Head, aHead(h.Method()), h.Method())
		}
		if len(o.Options) > 0 {
			return usageErrorf("--set: options are fixed when a head is created and %s already exists; write a new --head to change them", o.Head)
		}
	} else {
		if o.Method == "" {
			return usageErrorf("--method is required to create %s (one of %s)", o.Head, strings.Join(heads.Methods(), ", "))
		}
		specs, err := methodSpecs(o.Method)
		if err != nil {
			return err
		}
		cfg, err := specs[0].Parse(o.Options)
		if err != nil {
			return UsageError{fmt.Errorf("--set: %w", err)}
		}
		if h, err = specs[0].New(cfg); err != nil {
			return UsageError{fmt.Errorf("--set: %w", err)}
		}
		if err := atomicfile.CheckWritable(o.Head); err != nil {
			return fmt.Errorf("--head: %w", err)
		}
	}
	set, err := readFeatures("features", o.Features)
	if err != nil {
		return err
	}
	if set.N == 0 {
		return fmt.Errorf("--features %s has no rows", o.Features)
	}
	if h.Method() == "aper" && !strings.Contains(o.Features, ",") {
		return aperNeedsTwo("--features")
	}
	if exists {
		if err := heads.CheckFeatures(info, set); err != nil {
			return fmt.Errorf("--features %s: %w", o.Features, err)
		}
		info.Fingerprint = info.Space().Adopt(set.Space()).Fingerprint
	} else {
		info = heads.InfoFrom(set)
		info.Classes = nil
		info.Ledger = heads.NewLedger()
	}
	y, names := mapLabels(info.Classes, set)
	info.Classes = names
	rows, err := checkRepeats(info, set, y, o, log)
	if err != nil {
		return err
	}
	headProgress(h, stderr)
	err = interruptible(ctx, o.Head, func() error {
		if err := h.Learn(set.X, y); err != nil {
			return fmt.Errorf("learning %s: %w", o.Features, err)
		}
		if err := h.EndStage(); err != nil {
			return fmt.Errorf("learning %s: %w", o.Features, err)
		}
		if info.Ledger != nil {
			info.Ledger.Add(rows)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := heads.Save(o.Head, h, info); err != nil {
		return err
	}
	counts := map[int]int{}
	for _, l := range y {
		counts[l]++
	}
	learned := make([]string, 0, len(counts))
	for l := range counts {
		learned = append(learned, names[l])
	}
	sort.Strings(learned)
	verb := "created"
	if exists {
		verb = "updated"
	}
	fmt.Fprintf(stdout, "%s %s (%s): learned %s of %s; the head now scores %s\n",
		verb, o.Head, h.Method(), countOf(set.N, "row", "rows"), countOf(len(counts), "class", "classes"), countOf(len(h.Classes()), "class", "classes"))
	log.Info("fit", "classes", strings.Join(learned, ","))
	return nil
}

// checkRepeats refuses rows of set (head labels y) whose sample the head
// already learned, or that occur twice in set, unless o.AllowRepeats: they
// would count twice. It returns the rows' ledger entries, to record once
// learned. A head without a ledger (written by an older cl, or by a program that keeps none) cannot be
// checked; that is logged.
func checkRepeats(info heads.Info, set *features.Set, y []int, o fitOptions, log *slog.Logger) (heads.LedgerRows, error) {
	if info.Ledger == nil {
		log.Warn("the head keeps no ledger of its learned rows (written by an older cl, or by a program that keeps none): repeated samples cannot be detected, and cl forget --features will refuse it; refit it from its feature files to get one",
			"head", o.Head)
		return heads.LedgerRows{}, nil
	}
	rows, err := heads.NewLedgerRows(set, y)
	if err != nil {
		return rows, err
	}
	if o.AllowRepeats {
		return rows, nil
	}
	if err := info.Ledger.CheckNew(rows); err != nil {
		return rows, fmt.Errorf("--features %s: %w; learning it again would count it twice (give --allow-repeats to do that on purpose)", o.Features, err)
	}
	return rows, nil
}
