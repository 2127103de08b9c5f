package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/cl-dev/cl/models"
	"github.com/cl-dev/cl/models/onnxpb"
)

func init() {
	registerModelsSubcommand(&cli.Command{
		Name:      "manifest",
		Usage:     "show a backbone's manifest, or change its preprocessing or description in place (no re-cut)",
		ArgsUsage: "M.onnx",
		// Flags may follow M.onnx; parseAnywhere parses them.
		SkipFlagParsing: true,
		Description: "Without flags, prints the manifest (JSON). With --preprocess or --backbone, rewrites the model with\n" +
			"the new manifest: atomically (a failure leaves the file as it was), in place (through a symbolic\n" +
			"link to its target) or to --out. The graph and weights are not touched. Features extracted under the\n" +
			"old preprocessing do not match the new model's (heads refuse to mix them).\n\n" +
			"--preprocess takes vit-in21k, imagenet, or a JSON object whose fields replace the model's, e.g.\n" +
			"'{\"mean\":[0.5,0.5,0.5],\"std\":[0.5,0.5,0.5]}' (an AugReg checkpoint fine-tuned on ImageNet-1k).\n\n" +
			"Example: cl models manifest vit.onnx --preprocess '{\"mean\":[0.5,0.5,0.5],\"std\":[0.5,0.5,0.5]}'",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "preprocess", Usage: "preprocessing `P`: vit-in21k, imagenet or JSON fields replacing the model's"},
			&cli.StringFlag{Name: "backbone", Usage: "a human description `TEXT` stored in the manifest"},
			&cli.StringFlag{Name: "out", Usage: "write the changed model to `FILE`", DefaultText: "in place", TakesFile: true},
		},
		Action: func(c *cli.Context) error {
			c, help, err := parseAnywhere(c)
			if help || err != nil {
				return err
			}
			if c.NArg() != 1 {
				return usageErrorf("models manifest takes one M.onnx, got %d arguments", c.NArg())
			}
			o := modelsManifestOptions{Model: c.Args().First(), Out: c.String("out"),
				Preprocess: c.String("preprocess")}
			if c.IsSet("backbone") {
				b := c.String("backbone")
				o.Backbone = &b
			}
			if o.Out != "" && o.Preprocess == "" && o.Backbone == nil {
				return usageErrorf("models manifest: --out needs a change (--preprocess or --backbone)")
			}
			return runModelsManifest(c.Context, o, c.App.Writer, c.App.ErrWriter)
		},
	})
}

// modelsManifestOptions are the inputs of `cl models manifest`.
type modelsManifestOptions struct {
	Model      string  // the .onnx file
	Out        string  // "" = rewrite Model in place
	Preprocess string  // preset or JSON; "" = unchanged
	Backbone   *string // nil = unchanged
}

// runModelsManifest prints the manifest of o.Model, or writes it changed.
func runModelsManifest(_ context.Context, o modelsManifestOptions, stdout, stderr io.Writer) error {
	m, err := models.ReadModel(o.Model)
	if err != nil {
		return err
	}
	man, ok, err := models.ManifestOf(m)
	if err != nil {
		return fmt.Errorf("%s: %w", o.Model, err)
	}
	if !ok {
		return fmt.Errorf("%s has no cl manifest; make a backbone with cl models cut (it adds one)", o.Model)
	}
	if o.Preprocess == "" && o.Backbone == nil {
		var b bytes.Buffer
		if err := json.Indent(&b, []byte(man.JSON()), "", "  "); err != nil {
			return err
		}
		fmt.Fprintln(stdout, b.String())
		return nil
	}
	old := man
	if o.Preprocess != "" {
		if man.Preprocess, err = parsePreprocess(o.Preprocess, man.Preprocess); err != nil {
			return err
		}
		if err := checkInputSize(o.Model, m.GetGraph(), man); err != nil {
			return err
		}
	}
	if o.Backbone != nil {
		man.Backbone = *o.Backbone
	}
	out := o.Out
	if out == "" {
		// Write through a symbolic link to its target, not over the link.
		if out, err = filepath.EvalSymlinks(o.Model); err != nil {
			return err
		}
	}
	models.SetManifest(m, man)
	if err := models.WriteModel(out, m); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s: manifest %s\n", out, man.JSON())
	if old.Preprocess.JSON() != man.Preprocess.JSON() {
		fmt.Fprintf(stderr, "note: preprocessing changed from %s; features extracted with the old one do not match this model's\n", old.Preprocess.JSON())
	}
	return nil
}

// parsePreprocess reads a --preprocess value: a preset name (vit-in21k,
// imagenet: the whole preprocessing) or a JSON object whose fields replace
// those of base (so '{"mean":[0.5,0.5,0.5],"std":[0.5,0.5,0.5]}' adds a
// normalisation and '{"mean":null,"std":null}' removes one). The result is
// validated. Errors are usage errors naming the flag.
func parsePreprocess(s string, base models.Preprocess) (models.Preprocess, error) {
	if !strings.HasPrefix(strings.TrimSpace(s), "{") {
		p, err := models.PreprocessPreset(s)
		if err != nil {
			return p, usageErrorf("--preprocess: %v", err)
		}
		return p, nil
	}
	p := base
	p.Mean = append([]float32(nil), base.Mean...)
	p.Std = append([]float32(nil), base.Std...)
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return p, usageErrorf("--preprocess %s: %v (fields: resize, interpolation, crop, mean, std)", s, err)
	}
	if len(p.Mean) == 0 {
		p.Mean = nil
	}
	if len(p.Std) == 0 {
		p.Std = nil
	}
	if err := p.Validate(); err != nil {
		return p, usageErrorf("--preprocess %s: %v", s, err)
	}
	return p, nil
}

// checkInputSize refuses a manifest whose crop does not fit the graph's
// image input (a fixed [N,3,S,S] input needs crop S).
func checkInputSize(name string, g *onnxpb.GraphProto, man models.Manifest) error {
	for _, in := range g.GetInput() {
		if in.GetName() != man.Input {
			continue
		}
		image := &onnxpb.GraphProto{Input: []*onnxpb.ValueInfoProto{in}, Output: g.GetOutput()}
		if _, err := models.CheckSignature(name, image, &man); err != nil {
			return usageErrorf("--preprocess: %v", err)
		}
		return nil
	}
	return fmt.Errorf("%s: the manifest's input %q is not a graph input", name, man.Input)
}
