package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/urfave/cli/v2"
	"google.golang.org/protobuf/proto"

	"github.com/cl-dev/cl/internal/atomicfile"
	"github.com/cl-dev/cl/models"
	"github.com/cl-dev/cl/models/ort"
)

func init() {
	registerModelsSubcommand(&cli.Command{
		Name:      "cut",
		Usage:     "make a backbone: expose a tensor as the float32 [N,D] feature output and store the manifest",
		ArgsUsage: "IN.onnx",
		// Flags may follow IN.onnx; parseAnywhere parses them.
		SkipFlagParsing: true,
		Description: "Adds DequantizeLinear for a uint8/int8 tensor, GlobalAveragePool with --pool gap, and\n" +
			"Flatten(axis=1); removes the nodes no longer needed and the old outputs; stores the manifest\n" +
			"(input, output, preprocessing) in the model's metadata; checks that ONNX Runtime loads and runs it.\n\n" +
			"Example: cl models cut mobilenetv2-12-int8.onnx --tensor 464_quantized --preprocess imagenet --out mnv2.onnx",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "tensor", Usage: "the tensor `NAME` to expose, listed by cl models inspect --tensors (required)"},
			&cli.StringFlag{Name: "out", Usage: "the .onnx `FILE` to write (required)", TakesFile: true},
			&cli.StringFlag{Name: "pool", Usage: "`gap` pools a 4-D [N,C,H,W] tensor globally (average) first", DefaultText: "none"},
			&cli.StringFlag{Name: "preprocess", Usage: "preprocessing `P`: vit-in21k, imagenet or a JSON object", DefaultText: "the input model's manifest"},
			&cli.StringFlag{Name: "backbone", Usage: "a human description `TEXT` stored in the manifest"},
			&cli.StringFlag{Name: "output-name", Value: models.DefaultFeatureOutput, Usage: "`NAME` of the new feature output"},
			&cli.BoolFlag{Name: "no-verify", Usage: "do not load the result in ONNX Runtime before writing it"},
		}, ortFlags()...),
		Action: func(c *cli.Context) error {
			c, help, err := parseAnywhere(c, "tensor", "out")
			if help || err != nil {
				return err
			}
			if c.NArg() != 1 {
				return usageErrorf("models cut takes one IN.onnx, got %d arguments", c.NArg())
			}
			o := modelsCutOptions{In: c.Args().First(), Out: c.String("out"), Verify: !c.Bool("no-verify"),
				Cut: models.CutOptions{Tensor: c.String("tensor"), Pool: c.String("pool"),
					OutputName: c.String("output-name"), Backbone: c.String("backbone")}}
			if s := c.String("preprocess"); s != "" {
				p, err := models.PreprocessPreset(s)
				if err != nil {
					return usageErrorf("--preprocess: %v", err)
				}
				o.Preprocess = &p
			}
			if err := checkBackboneFlags(c); err != nil {
				return err
			}
			o.ORT = backboneOptions(c)
			return runModelsCut(c.Context, o, c.App.Writer, c.App.ErrWriter)
		},
	})
}

type modelsCutOptions struct {
	In, Out    string
	Cut        models.CutOptions
	Preprocess *models.Preprocess // nil = take the input model's manifest
	Verify     bool
	ORT        ort.Options
}

// runModelsCut cuts o.In and writes o.Out atomically, after checking (unless
// o.Verify is false) that ONNX Runtime loads and runs the result.
func runModelsCut(ctx context.Context, o modelsCutOptions, stdout, stderr io.Writer) error {
	w := stdout
	if err := atomicfile.CheckWritable(o.Out); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	m, err := models.ReadModel(o.In)
	if err != nil {
		return err
	}
	if o.Preprocess != nil {
		o.Cut.Preprocess = *o.Preprocess
	} else {
		man, ok, err := models.ManifestOf(m)
		if err != nil || !ok {
			return usageErrorf("%s has no usable manifest; say how images are preprocessed with --preprocess vit-in21k|imagenet|JSON", o.In)
		}
		o.Cut.Preprocess = man.Preprocess
		if o.Cut.Backbone == "" {
			o.Cut.Backbone = man.Backbone
		}
	}
	res, err := models.Cut(m, o.Cut)
	if err != nil {
		return fmt.Errorf("cutting %s: %w", o.In, err)
	}
	marshal := proto.MarshalOptions{Deterministic: true}
	data, err := marshal.Marshal(m)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", o.Out, err)
	}
	dim := "D"
	if o.Verify {
		b, err := ort.OpenData(o.Out, data, o.ORT)
		if err != nil {
			return fmt.Errorf("ONNX Runtime does not accept the cut model (nothing written; --no-verify skips this check): %w", err)
		}
		x := make([]float32, 3*b.InputSize()*b.InputSize())
		_, err = b.Run(x, 1)
		d := b.Dim()
		b.Close()
		if err != nil {
			return fmt.Errorf("the cut model fails to run (nothing written): %w", err)
		}
		models.SetFeatureDim(m, res.Manifest.Output, d)
		if data, err = marshal.Marshal(m); err != nil {
			return fmt.Errorf("encoding %s: %w", o.Out, err)
		}
		dim = fmt.Sprint(d)
	}
	if err := ctx.Err(); err != nil {
		return interrupted(err, o.Out)
	}
	if err := atomicfile.WriteFile(o.Out, func(f io.Writer) error { _, err := f.Write(data); return err }); err != nil {
		return err
	}
	how := res.SourceType
	if res.Dequantized {
		how += fmt.Sprintf(", dequantized with %s/%s", res.Scale, res.ZeroPoint)
	}
	if res.Pooled {
		how += ", global-average-pooled"
	}
	fmt.Fprintf(w, "wrote %s: %s float32 [N,%s] from %s (%s); %d → %d nodes; input %s; preprocess %s\n",
		o.Out, res.Manifest.Output, dim, o.Cut.Tensor, how, res.NodesBefore, res.NodesAfter, res.Manifest.Input, res.Manifest.Preprocess.JSON())
	return nil
}
