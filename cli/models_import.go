package cli

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"
	"google.golang.org/protobuf/proto"

	"github.com/cl-dev/cl/internal/atomicfile"
	"github.com/cl-dev/cl/internal/safetensors"
	"github.com/cl-dev/cl/models"
	"github.com/cl-dev/cl/models/ort"
	"github.com/cl-dev/cl/models/vit"
)

func init() {
	registerModelsSubcommand(&cli.Command{
		Name:            "import",
		Usage:           "build a ViT backbone (.onnx) from timm's model.safetensors or Google's .npz, optionally with prompt/prefix/adapter inputs",
		SkipFlagParsing: true,
		Description: "Reads a plain ViT checkpoint (timm VisionTransformer names, or the original JAX .npz), infers width,\n" +
			"depth, patch, MLP width and image size, and writes an ONNX graph (opset 17) whose output \"features\" is\n" +
			"the CLS token after the final LayerNorm, with the cl manifest. Variants add graph inputs: prompt (L2P),\n" +
			"vpt-shallow, vpt-deep, prefix (DualPrompt/CODA), adapter (AdaptFormer), ssf; --bake FILE.safetensors\n" +
			"fixes them as initializers instead. See docs/VIT.md.\n\n" +
			"Example: cl models import --weights model.safetensors --out vit-b16-in21k.onnx",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "weights", Usage: "checkpoint `FILE`: model.safetensors (timm) or .npz (Google JAX) (required)", TakesFile: true},
			&cli.StringFlag{Name: "out", Usage: "the .onnx `FILE` to write (required)", TakesFile: true},
			&cli.IntFlag{Name: "heads", Usage: "`N` attention heads", DefaultText: "width/64 for safetensors, stored in .npz"},
			&cli.StringFlag{Name: "variant", Value: "plain", Usage: "variant `NAME`: plain, prompt, vpt-shallow, vpt-deep, prefix, adapter or ssf"},
			&cli.IntFlag{Name: "tokens", Usage: "prompt / VPT / prefix length `p`", DefaultText: "5"},
			&cli.StringFlag{Name: "layers", Usage: "`BLOCKS` for prefix, vpt-deep, adapter, e.g. 0,1,2,3,4 or 0-4", DefaultText: "prefix 0-4, others all"},
			&cli.IntFlag{Name: "bottleneck", Usage: "adapter hidden width `r`", DefaultText: "64"},
			&cli.Float64Flag{Name: "scale", Usage: "adapter output scale `s`", DefaultText: "0.1"},
			&cli.StringFlag{Name: "bake", Usage: "safetensors `FILE` with the variant's parameters, baked in as initializers", TakesFile: true},
			&cli.StringFlag{Name: "quantize", Usage: "`int8` quantizes the blocks' Linear weights (dynamic, per output channel)", DefaultText: "float32"},
			&cli.StringFlag{Name: "attention", Usage: "attention `IMPL`: onnx (standard ops) or mha (com.microsoft.MultiHeadAttention, ONNX Runtime only)", DefaultText: "onnx"},
			&cli.StringFlag{Name: "backbone", Usage: "a human description `TEXT` stored in the manifest"},
			&cli.StringFlag{Name: "preprocess", Usage: "manifest preprocessing `P`: vit-in21k, imagenet, or JSON fields replacing the default", DefaultText: "bicubic, crop = image size, [0,1], no mean/std"},
			&cli.BoolFlag{Name: "no-verify", Usage: "do not load the result in ONNX Runtime before writing it"},
		}, ortFlags()...),
		Action: func(c *cli.Context) error {
			c, help, err := parseAnywhere(c, "weights", "out")
			if help || err != nil {
				return err
			}
			if c.NArg() != 0 {
				return usageErrorf("models import takes no arguments (use --weights and --out), got %q", c.Args().Slice())
			}
			o := modelsImportOptions{Weights: c.String("weights"), Out: c.String("out"), Heads: c.Int("heads"),
				Bake: c.String("bake"), Verify: !c.Bool("no-verify"), Preprocess: c.String("preprocess")}
			if o.Heads < 0 {
				return usageErrorf("--heads %d: must be positive", o.Heads)
			}
			v, err := vit.ParseVariant(c.String("variant"))
			if err != nil {
				return usageErrorf("--variant: %v", err)
			}
			o.Build = vit.Options{Variant: v, Tokens: c.Int("tokens"), Bottleneck: c.Int("bottleneck"),
				Scale: float32(c.Float64("scale")), Quantize: c.String("quantize"), Attention: c.String("attention"),
				Description: c.String("backbone")}
			if s := c.String("layers"); s != "" {
				if o.Build.Layers, err = parseLayers(s); err != nil {
					return usageErrorf("--layers: %v", err)
				}
			}
			if err := checkBackboneFlags(c); err != nil {
				return err
			}
			o.ORT = backboneOptions(c)
			return runModelsImport(c.Context, o, c.App.Writer, c.App.ErrWriter)
		},
	})
}

// parseLayers parses "0,1,2" or "0-4" (ranges inclusive) into block indices.
func parseLayers(s string) ([]int, error) {
	var out []int
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return nil, fmt.Errorf("%q is not a block number (use e.g. 0,1,2 or 0-4)", part)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a || b-a > vit.MaxDepth {
				return nil, fmt.Errorf("%q is not a range like 0-4", part)
			}
		}
		for i := a; i <= b; i++ {
			out = append(out, i)
		}
	}
	return out, nil
}

type modelsImportOptions struct {
	Weights, Out, Bake string
	Heads              int
	Build              vit.Options
	Verify             bool
	// Preprocess is the --preprocess value (preset or JSON); "" = the
	// protocol's default for the checkpoint's image size.
	Preprocess string
	ORT        ort.Options
}

// runModelsImport reads the checkpoint, builds the graph, checks it in ONNX
// Runtime when it has the image as its only input (and o.Verify), then writes
// o.Out atomically: a failure leaves no file. A summary goes to w, notes to stderr.
func runModelsImport(ctx context.Context, o modelsImportOptions, stdout, stderr io.Writer) error {
	w := stdout
	if err := atomicfile.CheckWritable(o.Out); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	if o.Bake != "" {
		f, err := safetensors.ReadFile(o.Bake)
		if err != nil {
			return fmt.Errorf("--bake: %w", err)
		}
		o.Build.Bake = f
	}
	wts, err := vit.Load(o.Weights, o.Heads)
	if err != nil {
		return err
	}
	for _, n := range wts.Notes {
		fmt.Fprintf(stderr, "note: %s\n", n)
	}
	pre := models.ForImageSize(wts.Image)
	if o.Preprocess != "" {
		if pre, err = parsePreprocess(o.Preprocess, pre); err != nil {
			return err
		}
		o.Build.Preprocess = &pre
	}
	m, err := vit.Build(wts, o.Build)
	if err != nil {
		return err
	}
	opt, _ := vit.NormalizedOptions(wts.Config, o.Build)
	specs := vit.ParamSpecs(wts.Config, opt)
	if o.Bake != "" {
		specs = nil
	}
	if o.Verify && len(specs) == 0 {
		data, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
		if err != nil {
			return fmt.Errorf("encoding %s: %w", o.Out, err)
		}
		b, err := ort.OpenData(o.Out, data, o.ORT)
		if err != nil {
			return fmt.Errorf("checking the new model in ONNX Runtime (pass --no-verify to skip): %w", err)
		}
		s := wts.Image
		_, err = b.Run(make([]float32, 3*s*s), 1)
		b.Close()
		if err != nil {
			return fmt.Errorf("checking the new model in ONNX Runtime (pass --no-verify to skip): %w", err)
		}
	}
	if err := ctx.Err(); err != nil {
		return interrupted(err, o.Out)
	}
	if err := models.WriteModel(o.Out, m); err != nil {
		return err
	}
	c := wts.Config
	fmt.Fprintf(w, "wrote %s\n", o.Out)
	fmt.Fprintf(w, "  architecture  width %d, depth %d, heads %d, patch %d, MLP %d, image %d (%d tokens)\n",
		c.Width, c.Depth, c.Heads, c.Patch, c.MLP, c.Image, c.Tokens())
	fmt.Fprintf(w, "  variant       %s", opt.Variant)
	if opt.Bake != nil {
		fmt.Fprintf(w, " (parameters baked from %s)", o.Bake)
	}
	if opt.Quantize != "" {
		fmt.Fprintf(w, ", %s weights", opt.Quantize)
	}
	fmt.Fprintln(w)
	scale := "in [0,1]"
	if len(pre.Mean) == 3 {
		scale = "(x − mean) / std of x in [0,1]"
	}
	fmt.Fprintf(w, "  input         %s float32 [N,3,%d,%d] %s (preprocess: %s)\n", vit.InputName, c.Image, c.Image, scale, pre.JSON())
	for _, s := range specs {
		dims := make([]string, 0, len(s.Shape)+1)
		if s.Batched {
			dims = append(dims, "N")
		}
		for _, d := range s.Shape {
			dims = append(dims, strconv.Itoa(d))
		}
		shape := "[" + strings.Join(dims, ",") + "]"
		fmt.Fprintf(w, "  input         %s float32 %s: %s\n", s.Name, shape, s.Doc)
	}
	fmt.Fprintf(w, "  output        %s float32 [N,%d]: CLS token after the final LayerNorm\n", vit.OutputName, c.Width)
	if opt.Variant == vit.Prompt {
		fmt.Fprintf(w, "  output        %s float32 [N,%d]: mean of the prompt tokens after the final LayerNorm\n", vit.PromptMeanName, c.Width)
	}
	return nil
}
