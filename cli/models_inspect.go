package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/cl-dev/cl/models"
)

func init() {
	registerModelsSubcommand(&cli.Command{
		Name:      "inspect",
		Usage:     "describe an ONNX model: inputs, outputs, opsets, size, sha256, manifest",
		ArgsUsage: "MODEL.onnx",
		// Flags may follow MODEL.onnx; parseAnywhere parses them.
		SkipFlagParsing: true,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print JSON instead of a table"},
			&cli.BoolFlag{Name: "tensors", Usage: "also list every intermediate tensor (the names cl models cut --tensor accepts)"},
		},
		Action: func(c *cli.Context) error {
			c, help, err := parseAnywhere(c)
			if help || err != nil {
				return err
			}
			if c.NArg() != 1 {
				return usageErrorf("models inspect takes one MODEL.onnx, got %d arguments", c.NArg())
			}
			return runModelsInspect(c.Context, modelsInspectOptions{Model: c.Args().First(), JSON: c.Bool("json"), Tensors: c.Bool("tensors")},
				c.App.Writer, c.App.ErrWriter)
		},
	})
}

// modelsInspectOptions is everything `cl models inspect` needs.
type modelsInspectOptions struct {
	Model         string
	JSON, Tensors bool
}

// runModelsInspect prints the description of the model o.Model to stdout.
func runModelsInspect(ctx context.Context, o modelsInspectOptions, stdout, stderr io.Writer) error {
	w, path, asJSON, tensors := stdout, o.Model, o.JSON, o.Tensors
	info, err := models.Inspect(path, tensors)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(info)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "model\t%s\n", info.Path)
	fmt.Fprintf(tw, "size\t%d bytes\n", info.Size)
	fmt.Fprintf(tw, "sha256\t%s\n", info.SHA256)
	prod := strings.TrimSpace(info.Producer + " " + info.ProducerVersion)
	if prod == "" {
		prod = "unknown"
	}
	fmt.Fprintf(tw, "producer\t%s (ir_version %d)\n", prod, info.IRVersion)
	var ops []string
	for _, o := range info.Opsets {
		ops = append(ops, fmt.Sprintf("%s %d", o.Domain, o.Version))
	}
	fmt.Fprintf(tw, "opsets\t%s\n", strings.Join(ops, ", "))
	fmt.Fprintf(tw, "nodes\t%d (%s)\n", info.Nodes, info.OpsString())
	fmt.Fprintf(tw, "parameters\t%d\n", info.Parameters)
	for _, io := range []struct {
		name string
		ts   []models.TensorInfo
	}{{"input", info.Inputs}, {"output", info.Outputs}} {
		for _, t := range io.ts {
			fmt.Fprintf(tw, "%s\t%s\t%s %s\n", io.name, t.Name, t.Type, t.ShapeString())
		}
	}
	switch {
	case info.ManifestError != "":
		fmt.Fprintf(tw, "manifest\tunusable: %s\n", info.ManifestError)
	case info.Manifest == nil:
		fmt.Fprintf(tw, "manifest\tnone (add one with `cl models cut %s --tensor OUTPUT --preprocess ... --out NEW.onnx`)\n", info.Path)
	default:
		m := info.Manifest
		fmt.Fprintf(tw, "manifest\tinput %q, output %q\n", m.Input, m.Output)
		fmt.Fprintf(tw, "preprocess\t%s\n", m.Preprocess.JSON())
		if m.Backbone != "" {
			fmt.Fprintf(tw, "backbone\t%s\n", m.Backbone)
		}
	}
	for k, v := range info.Metadata {
		fmt.Fprintf(tw, "metadata\t%s = %s\n", k, v)
	}
	if tensors {
		fmt.Fprintf(tw, "\ntensor\top\ttype\tshape\n")
		for _, t := range info.Tensors {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.Name, t.Op, t.Type, t.ShapeString())
		}
	}
	return tw.Flush()
}
