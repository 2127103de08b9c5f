package cli

import (
	"context"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"sync"
	"time"

	"github.com/cl-dev/cl/extract/data"
	"github.com/cl-dev/cl/extract/imageproc"
	"github.com/cl-dev/cl/learners"
	"github.com/cl-dev/cl/models"
	"github.com/cl-dev/cl/serve"
	"github.com/cl-dev/cl/tune"
)

// `cl serve --learner`: a learner file (cl fit --learner) served for
// prediction; learn and forget are refused (serve.LearnerServer).

// learnerScorer adapts a learner to serve.Scorer: the decoded images become
// a data set of raw RGB samples (what the learner would decode from the
// files itself), scored one request at a time (a learner's Scores is not
// safe for concurrent use), and dropped from its caches afterwards.
type learnerScorer struct {
	mu    sync.Mutex
	l     learners.Learner
	cols  []int
	names []string
}

func newLearnerScorer(l learners.Learner, fi learners.FileInfo) *learnerScorer {
	s := &learnerScorer{l: l}
	// Scores' columns are the classes learned, ascending.
	seen := make([]bool, len(fi.Names))
	for _, k := range fi.Learned {
		seen[k] = true
	}
	for k, ok := range seen {
		if ok {
			s.cols = append(s.cols, k)
			s.names = append(s.names, fi.Names[k])
		}
	}
	return s
}

func (s *learnerScorer) Classes() []string { return s.names }

func (s *learnerScorer) Score(ctx context.Context, imgs []*imageproc.RGB) ([]float64, error) {
	d := &tune.Dataset{}
	for i, m := range imgs {
		d.Samples = append(d.Samples, data.Sample{Raw: &data.Raw{W: m.W, H: m.H, C: 3, Pix: m.Pix}})
		d.Labels = append(d.Labels, 0)
		d.IDs = append(d.IDs, fmt.Sprintf("image %d", i))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	scores, cols, err := scoreLearner(ctx, s.l, d)
	if err != nil {
		return nil, err
	}
	if len(cols) != len(s.cols) {
		return nil, fmt.Errorf("%s scored %d classes, its file lists %d learned", s.l.Method(), len(cols), len(s.cols))
	}
	for i, k := range cols {
		if k != s.cols[i] {
			return nil, fmt.Errorf("%s scored class %d in column %d, its file lists %d there", s.l.Method(), k, i, s.cols[i])
		}
	}
	return scores, nil
}

// runServeLearner serves the learner file o.Learner in the ViT of
// o.LearnerBackbone until ctx is done: no state folder, no token (nothing
// can change it), the request limits of o.Config.
func runServeLearner(ctx context.Context, o serveOptions, stdout, stderr io.Writer) error {
	log := newLogger(stderr)
	tlsCfg, err := o.tlsConfig()
	if err != nil {
		return err
	}
	start := time.Now()
	b := o.LearnerBackbone
	b.Session.NoSpinning = !o.Spin // as the backbone of cl serve
	l, fi, env, err := openLearner(o.Learner, b, 0, log)
	if err != nil {
		return err
	}
	defer learners.Close(l)
	info := serve.LearnerInfo{File: filepath.Base(o.Learner), Method: fi.Method, Weights: filepath.Base(b.Weights),
		WeightsSHA256: fi.WeightsSHA256, Preprocess: models.ForImageSize(env.Weights.Image)}
	s, err := serve.NewLearner(o.Config, newLearnerScorer(l, fi), info, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return fmt.Errorf("--listen %s: %w", o.Listen, err)
	}
	scheme := "http"
	if tlsCfg != nil {
		scheme = "https"
	}
	log.Info("serving a learner (predict only: it learns in stages with cl fit --learner)", "url", scheme+"://"+ln.Addr().String(),
		"learner", o.Learner, "method", fi.Method, "classes", len(fi.Learned), "start_seconds", fmt.Sprintf("%.2f", time.Since(start).Seconds()))
	fmt.Fprintf(stdout, "listening on %s://%s\n", scheme, ln.Addr())
	return s.Serve(ctx, ln, tlsCfg)
}
