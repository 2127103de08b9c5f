package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/cl-dev/cl/heads"
	"github.com/cl-dev/cl/internal/atomicfile"
)

func init() {
	register(&cli.Command{
		Name:         "export",
		OnUsageError: onUsageError,
		Usage:        "write an inference-only copy of a head: what prediction needs, nothing that only learning needs",
		ArgsUsage:    " ",
		Description: "The exported head scores exactly (bit for bit) as --head, in cl predict, cl eval and cl serve\n" +
			"(read-only there), and refuses to learn, forget or merge: keep the full file for that. RanPAC keeps\n" +
			"W_o (M × C), its classes, λ and the projection's seed and hash, and drops the M × M Gram matrix and Q;\n" +
			"LDA keeps its solved w, b and class sums and drops the D × D scatter; the other methods keep their\n" +
			"state (already the size of their classifier, or what they solve from). See docs/SERVE.md.\n" +
			"The file is marked inference_only in its metadata; the ledger is not kept.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "head", Usage: "full head `FILE` (H.safetensors; required)"},
			&cli.StringFlag{Name: "out", Usage: "exported head `FILE` to write (required; not --head itself)"},
		},
		Action: func(c *cli.Context) error {
			if err := requireFlags(c, "head", "out"); err != nil {
				return err
			}
			if c.Args().Present() {
				return usageErrorf("export takes no arguments (got %q)", c.Args().First())
			}
			return runExport(c.Context, c.String("head"), c.String("out"), c.App.Writer, c.App.ErrWriter)
		},
	})
}

func runExport(ctx context.Context, headPath, out string, stdout, stderr io.Writer) error {
	if a, err := filepath.Abs(headPath); err == nil {
		if b, err := filepath.Abs(out); err == nil && a == b {
			return usageErrorf("--out %s is --head itself: write the export to another file and keep the full head (it is what learns)", out)
		}
	}
	lock, err := lockForWrite(ctx, "--out", out, stderr)
	if err != nil {
		return err
	}
	defer lock.Release()
	h, info, err := heads.Load(headPath)
	if err != nil {
		return fmt.Errorf("--head: %w", err)
	}
	if err := atomicfile.CheckWritable(out); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	e, err := heads.Export(h)
	if err != nil {
		return fmt.Errorf("--head %s: %w", headPath, err)
	}
	info.Ledger = nil
	if err := heads.Save(out, e, info); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	var inSize, outSize int64
	if st, err := os.Stat(headPath); err == nil {
		inSize = st.Size()
	}
	if st, err := os.Stat(out); err == nil {
		outSize = st.Size()
	}
	fmt.Fprintf(stdout, "exported the %s head (%s) from %s (%d bytes) to %s (%d bytes, inference only)\n",
		h.Method(), countOf(len(h.Classes()), "class", "classes"), headPath, inSize, out, outSize)
	return nil
}
