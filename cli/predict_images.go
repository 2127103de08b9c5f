package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/cl-dev/cl/extract"
	"github.com/cl-dev/cl/extract/data"
	"github.com/cl-dev/cl/features"
	"github.com/cl-dev/cl/models/ort"
)

// imageInput is `cl predict`'s image mode: a backbone and the images to run
// through it, as a data spec or as files.
type imageInput struct {
	Model  string
	Data   string   // a --data spec ("" with Images)
	Images []string // image files given as arguments
	ORT    ort.Options
}

// extractForPredict runs the images of in through the backbone with the
// extract pipeline (the same decoding, preprocessing and batching as
// `cl extract`) and returns their features (labelled when the source is).
// The rows pass through a temporary feature file, removed before return.
func extractForPredict(ctx context.Context, in imageInput, log *slog.Logger) (*features.Set, error) {
	var src data.Source
	var err error
	if in.Data != "" {
		src, err = data.Open(in.Data)
		if err != nil {
			return nil, fmt.Errorf("--data: %w", err)
		}
	} else {
		fs, err := data.OpenPaths(in.Images)
		if err != nil {
			return nil, err
		}
		src = fs
	}
	defer src.Close()
	bb, err := ort.Open(in.Model, in.ORT)
	if err != nil {
		return nil, fmt.Errorf("--model: %w", err)
	}
	defer bb.Close()
	tmp, err := os.MkdirTemp("", "cl-predict-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, "features.safetensors")
	if _, err := extract.Extract(ctx, src, bb, out, extract.Options{Log: log}); err != nil {
		return nil, err
	}
	return features.ReadAny(out)
}
