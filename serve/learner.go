package serve

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"image"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/cl-dev/cl/extract/imageproc"
	"github.com/cl-dev/cl/models"
)

// A server of a continual learner that runs its own backbone (the prompt
// methods and EASE, trained with `cl fit --learner`): it scores images,
// and refuses learn and forget, since these methods learn in stages from a
// labelled image set, not one sample at a time. It keeps no state folder.

// Scorer is such a learner: it decodes nothing and sees no HTTP, only
// images already decoded to RGB.
type Scorer interface {
	// Score returns row-major [len(imgs), len(Classes())] scores (higher =
	// more likely) of the images. It may be called concurrently.
	Score(ctx context.Context, imgs []*imageproc.RGB) ([]float64, error)
	// Classes are the names of the score columns (the classes learned).
	Classes() []string
}

// LearnerInfo describes the learner for /v1/model.
type LearnerInfo struct {
	// File is the learner file's base name, Method its method.
	File, Method string
	// Weights and WeightsSHA256 name the pre-trained ViT checkpoint it runs
	// in; Preprocess is the test transform of its images.
	Weights, WeightsSHA256 string
	Preprocess             models.Preprocess
}

// LearnerServer serves a Scorer: /v1/predict from images, /v1/classes,
// /v1/model, /v1/samples (always empty), health, metrics and the OpenAPI
// document; /v1/learn and /v1/forget answer 409 staged_learner.
type LearnerServer struct {
	cfg   Config
	sc    Scorer
	info  LearnerInfo
	dec   *imageDecoder
	met   *metrics
	log   *slog.Logger
	sem   chan struct{}
	mux   *http.ServeMux
	ready atomic.Bool
}

// NewLearner builds the server of sc. cfg's limits apply (body, pixels,
// images per request, concurrent requests, top k, timeouts); its state
// folder, token and batching do not (nothing is learned or journaled).
func NewLearner(cfg Config, sc Scorer, info LearnerInfo, log *slog.Logger) (*LearnerServer, error) {
	cfg.StateDir, cfg.Insecure = "-", true // unused: nothing to keep or to authorise
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if len(sc.Classes()) == 0 {
		return nil, fmt.Errorf("the %s learner %s has learned no class: teach it a stage with cl fit --learner first", info.Method, info.File)
	}
	s := &LearnerServer{cfg: cfg, sc: sc, info: info, log: log, sem: make(chan struct{}, cfg.MaxConcurrent),
		dec: &imageDecoder{maxPixels: cfg.MaxPixels, sem: make(chan struct{}, runtime.GOMAXPROCS(0))}}
	zero := func() float64 { return 0 }
	s.met = newMetrics(zero, zero, zero)
	s.routes()
	s.ready.Store(true)
	return s, nil
}

// Handler is the server's HTTP handler (every route).
func (s *LearnerServer) Handler() http.Handler { return s.mux }

func (s *LearnerServer) table() []route {
	refuse := func(w http.ResponseWriter, r *http.Request) { writeErr(w, s.staged()) }
	return []route{
		{"POST", "/v1/predict", false, true, s.handlePredict},
		{"POST", "/v1/learn", false, true, refuse},
		{"POST", "/v1/forget", false, true, refuse},
		{"GET", "/v1/classes", false, true, s.handleClasses},
		{"GET", "/v1/model", false, true, s.handleModel},
		{"GET", "/v1/samples", false, true, func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, 200, map[string]any{"total": 0, "samples": []sampleInfo{}})
		}},
		{"GET", "/healthz", false, false, func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, 200, map[string]string{"status": "ok"})
		}},
		{"GET", "/readyz", false, false, s.handleReady},
		{"GET", "/metrics", false, false, s.met.handler().ServeHTTP},
		{"GET", "/openapi.json", false, false, handleOpenAPI},
		{"GET", "/", false, false, handleUI},
	}
}

// staged is the refusal of learn and forget.
func (s *LearnerServer) staged() error {
	return errf(409, "staged_learner", "this server serves the %s learner %s, which learns in stages from labelled images, not online: teach it the next stage with `cl fit --learner %s --weights … --data …` and restart the server with the new file",
		s.info.Method, s.info.File, s.info.File)
}

// routes builds the mux of the table as Server.routes does.
func (s *LearnerServer) routes() { s.mux = newMux(s.table(), s.met, s.serveRoute) }

func (s *LearnerServer) serveRoute(rt route, w http.ResponseWriter, r *http.Request) {
	if rt.limited {
		if !admit(w, s.sem, s.met, s.cfg.MaxConcurrent) {
			return
		}
		defer func() { <-s.sem }()
	}
	rt.h(w, r)
}

func (s *LearnerServer) handlePredict(w http.ResponseWriter, r *http.Request) {
	top := 5
	if v := r.URL.Query().Get("top"); v != "" {
		k, err := strconv.Atoi(v)
		if err != nil || k < 1 || k > s.cfg.MaxTop {
			writeErr(w, errf(400, "bad_top", "top=%q: want a whole number from 1 to %d", v, s.cfg.MaxTop))
			return
		}
		top = k
	}
	var parts []part
	mt, params := mediaType(r)
	switch {
	case strings.HasPrefix(mt, "image/"):
		body, err := readBody(w, r, s.cfg.MaxBody)
		if err != nil {
			writeErr(w, err)
			return
		}
		parts = []part{{data: body}}
	case mt == "multipart/form-data":
		_, ps, err := readMultipart(w, r, params, s.cfg.MaxBody, s.cfg.MaxImages, "")
		if err != nil {
			writeErr(w, err)
			return
		}
		parts = ps
	case mt == "application/json":
		writeErr(w, errf(415, "unsupported_media_type", "the %s learner runs its own backbone on images: send an image (image/jpeg, image/png, …) or multipart/form-data with image files, not feature vectors", s.info.Method))
		return
	default:
		writeErr(w, unsupported(mt))
		return
	}
	imgs := make([]*imageproc.RGB, len(parts))
	for i, p := range parts {
		which := fmt.Sprintf("image %d", i)
		if p.name != "" {
			which = fmt.Sprintf("image %d (%s)", i, p.name)
		}
		img, err := s.dec.decodeRGB(p.data, which)
		if err != nil {
			writeErr(w, err)
			return
		}
		imgs[i] = img
	}
	names := s.sc.Classes()
	scores, err := s.sc.Score(r.Context(), imgs)
	if err != nil {
		writeErr(w, err)
		return
	}
	C := len(names)
	if len(scores) != len(imgs)*C {
		writeErr(w, fmt.Errorf("the learner gave %d scores for %d images × %d classes", len(scores), len(imgs), C))
		return
	}
	k := min(top, C)
	rep := predictReply{Predictions: make([]prediction, len(imgs))}
	idx := make([]int, C)
	for i := range imgs {
		row := scores[i*C : (i+1)*C]
		for j := range idx {
			idx[j] = j
		}
		sort.SliceStable(idx, func(a, b int) bool { return row[idx[a]] > row[idx[b]] })
		for _, j := range idx[:k] {
			rep.Predictions[i].Top = append(rep.Predictions[i].Top, classScore{Class: names[j], Score: row[j]})
		}
		rep.Predictions[i].Name = parts[i].name
	}
	writeJSON(w, 200, rep)
}

// decodeRGB decodes one image to RGB within the pixel limit (checked from
// its header before any pixel is decoded), as decode does for a backbone.
func (d *imageDecoder) decodeRGB(data []byte, which string) (img *imageproc.RGB, err error) {
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		if _, e := imageproc.Decode(data); e != nil {
			return nil, errf(400, "bad_image", "%s: %v", which, e)
		}
		return nil, errf(400, "bad_image", "%s: %v", which, err)
	}
	if int64(cfg.Width)*int64(cfg.Height) > d.maxPixels {
		return nil, errf(413, "image_too_large", "%s: the %s image is %d×%d pixels, over the limit of %d (--max-pixels)", which, format, cfg.Width, cfg.Height, d.maxPixels)
	}
	d.sem <- struct{}{}
	defer func() { <-d.sem }()
	defer func() {
		if p := recover(); p != nil {
			img, err = nil, errf(400, "bad_image", "%s: the decoder failed: %v", which, p)
		}
	}()
	m, err := imageproc.Decode(data)
	if err != nil {
		return nil, errf(400, "bad_image", "%s: %v", which, err)
	}
	return imageproc.ToRGB(m), nil
}

func (s *LearnerServer) handleClasses(w http.ResponseWriter, r *http.Request) {
	var out []classInfo
	for _, c := range s.sc.Classes() {
		out = append(out, classInfo{Name: c})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	writeJSON(w, 200, map[string]any{"model_version": 0, "classes": nonNilSlice(out)})
}

// learnerModelReply is /v1/model of a learner: the fields of a head's
// reply (backbone = the ViT checkpoint, no feature space, inference only)
// and the learner file.
type learnerModelReply struct {
	modelReply
	Learner string `json:"learner"`
}

func (s *LearnerServer) handleModel(w http.ResponseWriter, r *http.Request) {
	pre, _ := json.Marshal(s.info.Preprocess)
	writeJSON(w, 200, learnerModelReply{modelReply: modelReply{Backbone: s.info.Weights, BackboneSHA256: s.info.WeightsSHA256,
		Preprocess: pre, Method: s.info.Method, Classes: len(s.sc.Classes()), InferenceOnly: true}, Learner: s.info.File})
}

func (s *LearnerServer) handleReady(w http.ResponseWriter, r *http.Request) {
	if !s.ready.Load() {
		writeErr(w, errf(503, "not_ready", "the server is starting or shutting down"))
		return
	}
	writeJSON(w, 200, map[string]string{"status": "ready"})
}

// Serve accepts connections on l until ctx is done, then drains the
// requests in flight (at most Config.ShutdownTimeout). With tlsCfg != nil
// it serves HTTPS.
func (s *LearnerServer) Serve(ctx context.Context, l net.Listener, tlsCfg *tls.Config) error {
	return serveHTTP(ctx, l, tlsCfg, s.cfg, s.Handler(), s.log, &s.ready, s.Close)
}

// Close marks the server not ready; there is nothing to write.
func (s *LearnerServer) Close() error {
	s.ready.Store(false)
	return nil
}
