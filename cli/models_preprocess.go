package cli

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/urfave/cli/v2"

	"github.com/cl-dev/cl/extract/imageproc"
	"github.com/cl-dev/cl/internal/atomicfile"
	"github.com/cl-dev/cl/internal/npy"
	"github.com/cl-dev/cl/models"
)

func init() {
	registerModelsSubcommand(&cli.Command{
		Name:      "preprocess",
		Usage:     "turn images into the model's float32 [N,3,S,S] input, saved as .npy (for parity checks with Python)",
		ArgsUsage: "IMAGE...",
		Description: "Decodes each image (JPEG, PNG, GIF, BMP, WebP), converts it to RGB, resizes and crops it exactly\n" +
			"as Pillow 9 + torchvision do under the model's manifest, and writes the tensors in the order given.\n" +
			"--preprocess overrides manifest fields with JSON, e.g. '{\"interpolation\":\"bilinear\"}'; without\n" +
			"--model it must give the whole preprocessing. See docs/PREPROCESSING.md.",
		SkipFlagParsing: true,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "model", Usage: "ONNX model `FILE` whose manifest says how to preprocess", TakesFile: true},
			&cli.StringFlag{Name: "preprocess", Usage: "preprocessing `P`: vit-in21k, imagenet, or JSON fields of the manifest's \"preprocess\" overriding the model's"},
			&cli.StringFlag{Name: "out", Usage: "output .npy `FILE`, float32 [N,3,S,S], written atomically (required)", TakesFile: true},
			&cli.IntFlag{Name: "workers", Usage: "`N` images decoded in parallel", DefaultText: "number of CPUs"},
		},
		Action: func(c *cli.Context) error {
			c, help, err := parseAnywhere(c, "out")
			if help || err != nil {
				return err
			}
			opts := modelsPreprocessOptions{
				Model:      c.String("model"),
				Preprocess: c.String("preprocess"),
				Out:        c.String("out"),
				Workers:    c.Int("workers"),
				Images:     c.Args().Slice(),
			}
			if len(opts.Images) == 0 {
				return usageErrorf("models preprocess: give at least one IMAGE")
			}
			if opts.Model == "" && opts.Preprocess == "" {
				return usageErrorf("models preprocess: give --model M.onnx (its manifest) or --preprocess JSON")
			}
			if opts.Workers < 0 {
				return usageErrorf("models preprocess: --workers %d must be ≥ 0", opts.Workers)
			}
			return runModelsPreprocess(c.Context, opts, c.App.Writer, c.App.ErrWriter)
		},
	})
}

// modelsPreprocessOptions are the inputs of `cl models preprocess`.
type modelsPreprocessOptions struct {
	Model      string   // ONNX model with a manifest; optional with Preprocess
	Preprocess string   // JSON overriding fields of the manifest's preprocess
	Out        string   // .npy output path
	Workers    int      // 0 = runtime.NumCPU()
	Images     []string // image paths, in output order
}

// resolvePreprocess combines the model's manifest and the --preprocess
// value (a preset, or JSON fields over the manifest's; see parsePreprocess).
func resolvePreprocess(model, override string) (models.Preprocess, error) {
	var p models.Preprocess
	if model != "" {
		man, err := models.ReadManifest(model)
		if err != nil {
			return p, err
		}
		p = man.Preprocess
	}
	if override != "" {
		return parsePreprocess(override, p)
	}
	return p, p.Validate()
}

// maxPreprocessOutput bounds the .npy output `cl models preprocess` builds in
// memory (4 GiB).
const maxPreprocessOutput = 4 << 30

// runModelsPreprocess preprocesses opts.Images and writes them as one
// float32 [N,3,S,S] .npy file; progress and the summary go to log.
func runModelsPreprocess(ctx context.Context, opts modelsPreprocessOptions, stdout, stderr io.Writer) error {
	log := stderr
	p, err := resolvePreprocess(opts.Model, opts.Preprocess)
	if err != nil {
		return err
	}
	pp, err := imageproc.NewPreprocessor(p)
	if err != nil {
		return err
	}
	if err := npyCheckWritable(opts.Out); err != nil {
		return err
	}
	n, per := len(opts.Images), pp.Len()
	if size := int64(n) * int64(per) * 4; size > maxPreprocessOutput {
		return fmt.Errorf("%d images of float32 [3,%d,%d] make %s, over the %s this command holds in memory; give fewer images at a time",
			n, pp.Size(), pp.Size(), imageproc.FormatBytes(size), imageproc.FormatBytes(maxPreprocessOutput))
	}
	out := make([]float32, n*per)
	workers := opts.Workers
	if workers == 0 {
		workers = runtime.NumCPU()
	}
	workers = max(1, min(workers, n))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan int)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
		cancel()
	}
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				img, err := imageproc.DecodeFile(opts.Images[i])
				if err == nil {
					err = pp.Apply(img, out[i*per:(i+1)*per])
				}
				if err != nil {
					fail(fmt.Errorf("image %d of %d: %w", i+1, n, err))
				}
			}
		}()
	}
feed:
	for i := range opts.Images {
		select {
		case jobs <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s := pp.Size()
	if err := npy.WriteFloat32(opts.Out, out, []int{n, 3, s, s}); err != nil {
		return err
	}
	fmt.Fprintf(log, "wrote %s: float32 [%d,3,%d,%d], preprocess %s\n", opts.Out, n, s, s, p.JSON())
	return nil
}

// npyCheckWritable fails early when the output cannot be written.
func npyCheckWritable(path string) error {
	if path == "" {
		return usageErrorf("models preprocess: --out is empty")
	}
	return atomicfile.CheckWritable(path)
}
