package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/cl-dev/cl/features"
	"github.com/cl-dev/cl/internal/atomicfile"
	"github.com/cl-dev/cl/protocol"
)

func init() {
	stageFlags := func() []cli.Flag {
		return []cli.Flag{
			&cli.IntFlag{Name: "init", Value: 0, Usage: "classes of the first stage, `N` (0 = --inc, the survey's B0)"},
			&cli.IntFlag{Name: "inc", Value: 10, Usage: "classes of every later stage, `M`"},
			&cli.Int64Flag{Name: "seed", Value: 1993, Usage: "class-order seed `S`, as in cl bench (numpy legacy MT19937)"},
			&cli.BoolFlag{Name: "no-shuffle", Usage: "keep the file's class order (PILOT shuffle: false)"},
		}
	}
	register(&cli.Command{
		Name:            "features",
		Usage:           "show, select, concatenate and split feature files",
		HideHelpCommand: true,
		Description: "Feature files (F.safetensors, written by cl extract) are read whole and written atomically.\n" +
			"Stages are those of cl bench: the class order is numpy's permutation of the file's class list\n" +
			"(--seed, --no-shuffle) cut into B{init} Inc{inc} stages, numbered from 1. Files of one data set\n" +
			"(train and test) list the same classes, so they split into the same stages. See docs/FORMATS.md.",
		Subcommands: []*cli.Command{
			{
				Name:         "info",
				Usage:        "rows, dimension, classes with their row counts, model, fingerprint and preprocessing",
				ArgsUsage:    "F.safetensors",
				OnUsageError: onUsageError,
				Flags:        []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print one JSON object instead of a table"}},
				Action: func(c *cli.Context) error {
					args, err := interspersed(c)
					if err != nil {
						return helpShown(err)
					}
					if len(args) != 1 {
						return usageErrorf("features info needs one feature file, got %d arguments (cl features info F.safetensors)", len(args))
					}
					return runFeaturesInfo(c.Context, featuresInfoOptions{File: args[0], JSON: c.Bool("json")}, c.App.Writer, c.App.ErrWriter)
				},
			},
			{
				Name:         "select",
				Usage:        "keep the rows of some classes (--class) or of one stage (--stage)",
				ArgsUsage:    "F.safetensors --class A,B | --stage K [--init N --inc M --seed S] --out G.safetensors",
				OnUsageError: onUsageError,
				Flags: append([]cli.Flag{
					&cli.StringSliceFlag{Name: "class", Usage: "class `NAMES` to keep (comma-separated or repeated)"},
					&cli.IntFlag{Name: "stage", Usage: "keep the classes of stage `K` (1 = first)"},
					&cli.StringFlag{Name: "out", Usage: "feature `FILE` to write (required)", TakesFile: true},
				}, stageFlags()...),
				Action: func(c *cli.Context) error {
					args, err := interspersed(c)
					if err != nil {
						return helpShown(err)
					}
					if len(args) != 1 {
						return usageErrorf("features select needs one feature file, got %d arguments (cl features select F --class A,B --out G)", len(args))
					}
					o := featuresSelectOptions{File: args[0], Classes: c.StringSlice("class"), Stage: c.Int("stage"),
						Stages: stagesOf(c), Out: c.String("out")}
					if o.Out == "" {
						return usageErrorf("flag --out is required (cl features select F --class A,B --out G)")
					}
					if (len(o.Classes) > 0) == c.IsSet("stage") {
						return usageErrorf("give either --class NAMES or --stage K, not both or neither")
					}
					return runFeaturesSelect(c.Context, o, c.App.Writer, c.App.ErrWriter)
				},
			},
			{
				Name:         "concat",
				Usage:        "join the rows of feature files of the same model (class lists merged by name)",
				ArgsUsage:    "A.safetensors B.safetensors ... --out C.safetensors",
				OnUsageError: onUsageError,
				Flags:        []cli.Flag{&cli.StringFlag{Name: "out", Usage: "feature `FILE` to write (required)", TakesFile: true}},
				Action: func(c *cli.Context) error {
					args, err := interspersed(c)
					if err != nil {
						return helpShown(err)
					}
					if c.String("out") == "" {
						return usageErrorf("flag --out is required (cl features concat A B --out C)")
					}
					if len(args) < 2 {
						return usageErrorf("features concat needs at least two feature files, got %d (cl features concat A B --out C)", len(args))
					}
					return runFeaturesConcat(c.Context, featuresConcatOptions{Files: args, Out: c.String("out")}, c.App.Writer, c.App.ErrWriter)
				},
			},
			{
				Name:         "split",
				Usage:        "write one feature file per stage (stage1.safetensors, stage2.safetensors, ...)",
				ArgsUsage:    "F.safetensors [--init N --inc M --seed S] --out-dir DIR",
				OnUsageError: onUsageError,
				Flags: append([]cli.Flag{
					&cli.StringFlag{Name: "out-dir", Usage: "folder `DIR` for the stage files, created if missing (required)", TakesFile: true},
				}, stageFlags()...),
				Action: func(c *cli.Context) error {
					args, err := interspersed(c)
					if err != nil {
						return helpShown(err)
					}
					if len(args) != 1 {
						return usageErrorf("features split needs one feature file, got %d arguments (cl features split F --out-dir DIR)", len(args))
					}
					if c.String("out-dir") == "" {
						return usageErrorf("flag --out-dir is required (cl features split F --out-dir DIR)")
					}
					return runFeaturesSplit(c.Context, featuresSplitOptions{File: args[0], Stages: stagesOf(c), OutDir: c.String("out-dir")},
						c.App.Writer, c.App.ErrWriter)
				},
			},
		},
	})
}

// interspersed returns a command's positional arguments and sets the flags
// given among or after them on c (urfave/cli v2 stops parsing flags at the
// first argument, but `cl features select F --out G` is the natural order).
// "--" ends the flags.
func interspersed(c *cli.Context) ([]string, error) {
	known, isBool := map[string]bool{}, map[string]bool{}
	for _, f := range c.Command.Flags {
		_, b := f.(*cli.BoolFlag)
		for _, n := range f.Names() {
			known[n], isBool[n] = true, b
		}
	}
	var pos []string
	args := c.Args().Slice()
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			pos = append(pos, a)
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if name == "help" || name == "h" {
			if err := cli.ShowSubcommandHelp(c); err != nil {
				return nil, err
			}
			return nil, errHelpShown
		}
		if !known[name] {
			return nil, usageErrorf("unknown flag %s (see cl %s --help)", a, c.Command.FullName())
		}
		if isBool[name] && !hasValue {
			value, hasValue = "true", true
		}
		if !hasValue {
			if i+1 >= len(args) {
				return nil, usageErrorf("flag --%s needs a value (see cl %s --help)", name, c.Command.FullName())
			}
			i++
			value = args[i]
		}
		if err := c.Set(name, value); err != nil {
			return nil, usageErrorf("--%s %s: %v", name, value, err)
		}
	}
	return pos, nil
}

// errHelpShown stops a command whose --help came after its arguments.
var errHelpShown = errors.New("help shown")

// helpShown turns errHelpShown into success.
func helpShown(err error) error {
	if errors.Is(err, errHelpShown) {
		return nil
	}
	return err
}

// stageOptions choose the stages as cl bench does.
type stageOptions struct {
	Init, Inc int
	Seed      uint32
	Shuffle   bool
}

func stagesOf(c *cli.Context) stageOptions {
	return stageOptions{Init: c.Int("init"), Inc: c.Int("inc"), Seed: uint32(c.Int64("seed")), Shuffle: !c.Bool("no-shuffle")}
}

// stageClasses returns the class names of every stage of classes (index =
// label) under o: the protocol's class order cut into B{init} Inc{inc}.
func stageClasses(classes []string, o stageOptions) ([][]string, error) {
	if len(classes) == 0 {
		return nil, fmt.Errorf("the file lists no classes")
	}
	order, err := protocol.ClassOrder(len(classes), o.Seed, o.Shuffle)
	if err != nil {
		return nil, err
	}
	split, err := protocol.NewSplit(order, o.Init, o.Inc)
	if err != nil {
		return nil, UsageError{fmt.Errorf("--init %d --inc %d: %w", o.Init, o.Inc, err)}
	}
	out := make([][]string, split.Stages())
	for t := range out {
		lo, hi := split.Range(t)
		for _, c := range split.Order[lo:hi] {
			out[t] = append(out[t], classes[c])
		}
	}
	return out, nil
}

// readFeatureFile reads one feature file; errors name it. Unlabelled files
// (for cl predict) are accepted only when unlabelled is true.
func readFeatureFile(path string, unlabelled bool) (*features.Set, error) {
	read := features.Read
	if unlabelled {
		read = features.ReadAny
	}
	s, err := read(path)
	if err != nil {
		return nil, fmt.Errorf("%w (cl features reads files written by cl extract)", err)
	}
	return s, nil
}

// featuresInfoOptions is everything `cl features info` needs.
type featuresInfoOptions struct {
	File string
	JSON bool
}

// FeaturesInfo is what `cl features info --json` prints.
type FeaturesInfo struct {
	File    string       `json:"file"`
	Rows    int          `json:"rows"`
	Dim     int          `json:"dim"`
	Classes []ClassCount `json:"classes"`
	// Labelled is false for a file of unlabelled rows (cl extract of
	// unlabelled images, for cl predict).
	Labelled    bool   `json:"labelled"`
	HasIDs      bool   `json:"has_ids"`
	Model       string `json:"model"`
	ModelSHA256 string `json:"model_sha256"`
	Fingerprint string `json:"fingerprint"`
	Preprocess  string `json:"preprocess"`
	Source      string `json:"source"`
}

// ClassCount is one class of a feature file and its number of rows.
type ClassCount struct {
	Name string `json:"name"`
	Rows int    `json:"rows"`
}

func runFeaturesInfo(ctx context.Context, o featuresInfoOptions, stdout, stderr io.Writer) error {
	s, err := readFeatureFile(o.File, true)
	if err != nil {
		return err
	}
	info := FeaturesInfo{Labelled: s.Labelled(), File: o.File, Rows: s.N, Dim: s.D, HasIDs: s.IDs != nil, Model: s.Model, ModelSHA256: s.ModelSHA256,
		Fingerprint: s.Fingerprint, Preprocess: s.Preprocess, Source: s.Source, Classes: []ClassCount{}}
	for c, n := range s.ClassCounts() {
		info.Classes = append(info.Classes, ClassCount{Name: s.Classes[c], Rows: n})
	}
	if o.JSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(info)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fp := info.Fingerprint
	if fp == "" {
		fp = "none (written before fingerprints: the model file hash and preprocessing identify it)"
	}
	ids := "yes"
	if !info.HasIDs {
		ids = "no (heads cannot check repeated or unlearned rows by id; they use class and content)"
	}
	for _, kv := range [][2]string{
		{"file", info.File}, {"rows", fmt.Sprint(info.Rows)}, {"dim", fmt.Sprint(info.Dim)},
		{"classes", classesLine(info)}, {"sample ids", ids},
		{"model", info.Model}, {"model sha256", info.ModelSHA256}, {"fingerprint", fp},
		{"preprocess", info.Preprocess}, {"source", info.Source},
	} {
		fmt.Fprintf(tw, "%s\t%s\n", kv[0], kv[1])
	}
	if err := tw.Flush(); err != nil || len(info.Classes) == 0 {
		return err
	}
	fmt.Fprintln(stdout)
	tw = tabwriter.NewWriter(stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "label\tclass\trows\t\n")
	for c, cc := range info.Classes {
		fmt.Fprintf(tw, "%d\t%s\t%d\t\n", c, cc.Name, cc.Rows)
	}
	return tw.Flush()
}

// featuresSelectOptions is everything `cl features select` needs: either
// Classes or Stage (1-based, under Stages).
type featuresSelectOptions struct {
	File    string
	Classes []string
	Stage   int
	Stages  stageOptions
	Out     string
}

func runFeaturesSelect(ctx context.Context, o featuresSelectOptions, stdout, stderr io.Writer) error {
	if err := atomicfile.CheckWritable(o.Out); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	s, err := readFeatureFile(o.File, false)
	if err != nil {
		return err
	}
	names := o.Classes
	what := "classes " + strings.Join(names, ", ")
	if len(names) == 0 {
		stages, err := stageClasses(s.Classes, o.Stages)
		if err != nil {
			return fmt.Errorf("%s: %w", o.File, err)
		}
		if o.Stage < 1 || o.Stage > len(stages) {
			return usageErrorf("--stage %d: %s has %d stages under --init %d --inc %d (stages are numbered from 1)",
				o.Stage, o.File, len(stages), o.Stages.Init, o.Stages.Inc)
		}
		names = stages[o.Stage-1]
		what = fmt.Sprintf("stage %d of %d (%s)", o.Stage, len(stages), strings.Join(names, ", "))
	}
	sel, err := s.SelectClasses(names)
	if err != nil {
		return fmt.Errorf("--class: %s has %w", o.File, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := sel.Write(o.Out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s: %d of %d rows of %s, %s\n", o.Out, sel.N, s.N, o.File, what)
	return nil
}

// featuresConcatOptions is everything `cl features concat` needs.
type featuresConcatOptions struct {
	Files []string
	Out   string
}

func runFeaturesConcat(ctx context.Context, o featuresConcatOptions, stdout, stderr io.Writer) error {
	if err := atomicfile.CheckWritable(o.Out); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	sets := make([]*features.Set, len(o.Files))
	for i, f := range o.Files {
		var err error
		if sets[i], err = readFeatureFile(f, true); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	out, err := features.Concat(o.Files, sets)
	if err != nil {
		return err
	}
	if err := out.Write(o.Out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s: %d rows of %d classes from %d files\n", o.Out, out.N, len(out.Classes), len(o.Files))
	return nil
}

// featuresSplitOptions is everything `cl features split` needs.
type featuresSplitOptions struct {
	File   string
	Stages stageOptions
	OutDir string
}

func runFeaturesSplit(ctx context.Context, o featuresSplitOptions, stdout, stderr io.Writer) error {
	s, err := readFeatureFile(o.File, false)
	if err != nil {
		return err
	}
	stages, err := stageClasses(s.Classes, o.Stages)
	if err != nil {
		return fmt.Errorf("%s: %w", o.File, err)
	}
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return fmt.Errorf("--out-dir: %w", err)
	}
	for t, names := range stages {
		if err := ctx.Err(); err != nil {
			return err
		}
		sel, err := s.SelectClasses(names)
		if err != nil {
			return fmt.Errorf("%s: %w", o.File, err)
		}
		path := filepath.Join(o.OutDir, fmt.Sprintf("stage%d.safetensors", t+1))
		if err := sel.Write(path); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s: %d rows of %d classes (%s)\n", path, sel.N, len(sel.Classes), strings.Join(names, ", "))
	}
	return nil
}

func classesLine(info FeaturesInfo) string {
	if !info.Labelled {
		return "none: the rows are unlabelled (for cl predict)"
	}
	return fmt.Sprint(len(info.Classes))
}
