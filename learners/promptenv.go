package learners

import (
	"context"
	"fmt"
	"math/rand/v2"

	"google.golang.org/protobuf/proto"

	"github.com/cl-dev/cl/extract/imageproc"
	"github.com/cl-dev/cl/models"
	"github.com/cl-dev/cl/models/onnxpb"
	"github.com/cl-dev/cl/models/ort"
	"github.com/cl-dev/cl/models/vit"
	"github.com/cl-dev/cl/tune"
)

// promptEnv is what every image-trained learner (L2P, DualPrompt,
// CODA-Prompt, EASE) keeps: the pre-trained weights, the test transform
// and the frozen backbone that computes the queries (features) when they
// are not given.
type promptEnv struct {
	env   Env
	w     *vit.Weights
	tf    tune.Transform
	plain *ort.Session
	// queries caches the frozen [CLS] of evaluation data sets.
	queries map[*tune.Dataset][]float32
}

func newPromptEnv(method string, env Env) (*promptEnv, error) {
	if env.Weights == nil {
		return nil, fmt.Errorf("%s trains prompts in the ViT: it needs the pre-trained ViT checkpoint (--weights)", method)
	}
	pp, err := imageproc.NewPreprocessor(models.ForImageSize(env.Weights.Image))
	if err != nil {
		return nil, err
	}
	return &promptEnv{env: env, w: env.Weights, tf: tune.EvalTransform{P: pp}, queries: map[*tune.Dataset][]float32{}}, nil
}

// stream is the random stream tag of env.Seed: a learner's initial stream,
// or one per stage (tag + stage + 1) so that a learner loaded after stage
// t continues exactly as one that never stopped.
func (p *promptEnv) stream(tag uint64) *rand.Rand {
	return rand.New(rand.NewPCG(p.env.Seed, tag))
}

// session creates an ONNX Runtime session on m.
func (p *promptEnv) session(name string, m *onnxpb.ModelProto, inputs, outputs []string) (*ort.Session, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return nil, err
	}
	return ort.NewSession(name, b, inputs, outputs, p.env.Session)
}

// images is the graph input of n images x [n,3,S,S] (S the ViT's image
// size in pixels).
func (p *promptEnv) images(x []float32, n int) ort.Tensor {
	S := int64(p.w.Image)
	return ort.Tensor{Shape: []int64{int64(n), 3, S, S}, F32: x}
}

// queryOf returns the frozen pre-trained [CLS] of x [n,3,S,S]: [n,W].
func (p *promptEnv) queryOf(x []float32, n int) ([]float32, error) {
	if p.plain == nil {
		m, err := vit.Build(p.w, vit.Options{})
		if err != nil {
			return nil, err
		}
		if p.plain, err = p.session("frozen ViT (queries)", m, []string{vit.InputName}, []string{vit.OutputName}); err != nil {
			return nil, err
		}
	}
	out, err := p.plain.Run([]ort.Tensor{p.images(x, n)})
	if err != nil {
		return nil, err
	}
	return out[0].F32, nil
}

// inOrder runs fn on the images of d in row order, bs images a batch (the
// last one smaller), with the test transform. It stops at the first error
// of fn, of a sample or of ctx.
func (p *promptEnv) inOrder(ctx context.Context, d *tune.Dataset, bs int, fn func(b *tune.Batch) error) error {
	rows := tune.EpochOrder(d.Len(), 0, 0, false)
	batches, berr := tune.Batches(ctx, d, rows, bs, false, p.tf, 0, 0, p.env.Workers)
	for b := range batches {
		if err := fn(b); err != nil {
			for range batches {
			}
			return err
		}
	}
	if err := berr(); err != nil {
		return err
	}
	return ctx.Err()
}

// datasetQueries returns the frozen [CLS] of every image of d [d.Len(),W]:
// given (features of the same rows with width W) or computed once and
// cached.
func (p *promptEnv) datasetQueries(ctx context.Context, d *tune.Dataset, given []float32, dim int) ([]float32, error) {
	W := p.w.Width
	if given != nil && dim == W && len(given) == d.Len()*W {
		return given, nil
	}
	if q, ok := p.queries[d]; ok {
		return q, nil
	}
	out := make([]float32, 0, d.Len()*W)
	err := p.inOrder(ctx, d, extractBatch, func(b *tune.Batch) error {
		q, err := p.queryOf(b.X, b.N())
		out = append(out, q...)
		return err
	})
	if err != nil {
		return nil, err
	}
	p.queries[d] = out
	return out, nil
}

func (p *promptEnv) close() {
	if p.plain != nil {
		p.plain.Close()
		p.plain = nil
	}
}

// evalGuard refuses to score before a stage was learned or without
// images; runs says what the method runs on the images.
func evalGuard(method string, learned bool, e Eval, runs string) error {
	if !learned {
		return fmt.Errorf("%s: no stage learned yet", method)
	}
	if e.Images == nil {
		return fmt.Errorf("%s runs %s on images; this evaluation has features only", method, runs)
	}
	return nil
}
