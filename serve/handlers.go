package serve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cl-dev/cl/heads"
)

// inputs is what a predict or learn request carries: n images already
// preprocessed ([n, 3, S, S]) or n feature rows ([n, D]), with part names.
type inputs struct {
	n      int
	images []float32
	feats  []float32
	names  []string
}

// features returns the inputs' feature rows [n, D], running images through
// the batcher.
// tm, when not nil, receives the batch job's times.
func (s *Server) features(ctx context.Context, in inputs, tm *jobTimes) ([]float32, error) {
	if in.feats != nil {
		return in.feats, nil
	}
	return s.b.runReserved(ctx, in.images, in.n, tm)
}

// decodeImages decodes and preprocesses parts into one [n, 3, S, S] slice.
// It first reserves room for the images in the batcher's queue (503 when
// full), so that decoded images never exceed the queue; the room is given
// back on error, else when the batch has run (features).
func (s *Server) decodeImages(parts []part) (inputs, error) {
	if err := s.b.reserve(len(parts)); err != nil {
		s.met.rejected.WithLabelValues("queue_full").Inc()
		return inputs{}, err
	}
	per := s.dec.pp.Len()
	in := inputs{n: len(parts), images: s.imageBuf(len(parts))}
	for i, p := range parts {
		which := fmt.Sprintf("image %d", i)
		if p.name != "" {
			which = fmt.Sprintf("image %d (%s)", i, p.name)
		}
		if err := s.dec.decode(p.data, in.images[i*per:(i+1)*per], which); err != nil {
			s.b.release(len(parts))
			return inputs{}, err
		}
		in.names = append(in.names, p.name)
	}
	return in, nil
}

// imageBuf returns room for n preprocessed images [n, 3, S, S]. One image's
// room is recycled (recycle), sparing the allocation and clearing of 3·S²·4
// bytes (602 KB at 224²) per single-image request; Apply overwrites every
// value, so a recycled buffer needs no clearing.
func (s *Server) imageBuf(n int) []float32 {
	per := s.dec.pp.Len()
	if n == 1 {
		if b, ok := s.imgPool.Get().(*[]float32); ok {
			return (*b)[:per]
		}
	}
	return make([]float32, n*per)
}

// recycle keeps a single image's room for the next request; call it only
// once the batcher has run the image (features returned without error), when
// nothing refers to it any more.
func (s *Server) recycle(in inputs) {
	if in.n == 1 && in.images != nil {
		s.imgPool.Put(&in.images)
	}
}

// checkRows validates JSON feature rows and flattens them.
func (s *Server) checkRows(rows [][]float32, what string) ([]float32, error) {
	if len(rows) == 0 {
		return nil, errf(400, "no_features", "%s: no feature rows", what)
	}
	if len(rows) > s.cfg.MaxImages {
		return nil, errf(413, "too_many_images", "%s: %d rows, the limit is %d (--max-images)", what, len(rows), s.cfg.MaxImages)
	}
	out := make([]float32, 0, len(rows)*s.dim)
	for i, r := range rows {
		if len(r) != s.dim {
			return nil, errf(400, "wrong_dimension", "%s: row %d has %d features, the model has %d", what, i, len(r), s.dim)
		}
		out = append(out, r...)
	}
	return out, nil
}

type predictRequest struct {
	Features [][]float32 `json:"features"`
	Top      int         `json:"top,omitempty"`
}

type prediction struct {
	Name string       `json:"name,omitempty"`
	Top  []classScore `json:"top"`
}

type predictReply struct {
	ModelVersion uint64       `json:"model_version"`
	Predictions  []prediction `json:"predictions"`
}

func (s *Server) topParam(r *http.Request, def int) (int, error) {
	v := r.URL.Query().Get("top")
	if v == "" {
		return def, nil
	}
	k, err := strconv.Atoi(v)
	if err != nil || k < 1 || k > s.cfg.MaxTop {
		return 0, errf(400, "bad_top", "top=%q: want a whole number from 1 to %d", v, s.cfg.MaxTop)
	}
	return k, nil
}

func (s *Server) handlePredict(w http.ResponseWriter, r *http.Request) {
	tm := predictTiming{start: time.Now()}
	top, err := s.topParam(r, 5)
	if err != nil {
		writeErr(w, err)
		return
	}
	in, err := s.readPredict(w, r, &top, &tm)
	if err != nil {
		writeErr(w, err)
		return
	}
	x, err := s.features(r.Context(), in, &tm.job)
	if err != nil {
		writeErr(w, err)
		return
	}
	tm.back = time.Now()
	s.recycle(in)
	res, version, err := s.m.score(x, in.n, top)
	if err != nil {
		writeErr(w, err)
		return
	}
	tm.scored = time.Now()
	rep := predictReply{ModelVersion: version, Predictions: make([]prediction, in.n)}
	for i := range res {
		rep.Predictions[i].Top = res[i]
		if i < len(in.names) {
			rep.Predictions[i].Name = in.names[i]
		}
	}
	tm.header(w)
	writeJSON(w, 200, rep)
}

// readPredict reads a predict body; tm.read is set once it is read (before
// images are decoded).
func (s *Server) readPredict(w http.ResponseWriter, r *http.Request, top *int, tm *predictTiming) (inputs, error) {
	mt, params := mediaType(r)
	switch {
	case strings.HasPrefix(mt, "image/"):
		body, err := readBody(w, r, s.cfg.MaxBody)
		if err != nil {
			return inputs{}, err
		}
		tm.read = time.Now()
		return s.decodeImages([]part{{data: body}})
	case mt == "multipart/form-data":
		_, parts, err := readMultipart(w, r, params, s.cfg.MaxBody, s.cfg.MaxImages, "")
		if err != nil {
			return inputs{}, err
		}
		tm.read = time.Now()
		return s.decodeImages(parts)
	case mt == "application/json":
		body, err := readBody(w, r, s.cfg.MaxBody)
		if err != nil {
			return inputs{}, err
		}
		tm.read = time.Now()
		var req predictRequest
		if err := decodeJSON(body, &req); err != nil {
			return inputs{}, err
		}
		if req.Top != 0 {
			if req.Top < 1 || req.Top > s.cfg.MaxTop {
				return inputs{}, errf(400, "bad_top", "top %d: want 1 to %d", req.Top, s.cfg.MaxTop)
			}
			*top = req.Top
		}
		x, err := s.checkRows(req.Features, "features")
		if err != nil {
			return inputs{}, err
		}
		return inputs{n: len(req.Features), feats: x}, nil
	}
	return inputs{}, unsupported(mt)
}

func unsupported(mt string) error {
	if mt == "" {
		mt = "none"
	}
	return errf(415, "unsupported_media_type", "Content-Type %s: send an image (image/jpeg, image/png, …), multipart/form-data with image files, or application/json", mt)
}

type learnSample struct {
	ID       string    `json:"id"`
	Class    string    `json:"class"`
	Features []float32 `json:"features,omitempty"`
}

type learnRequest struct {
	Samples []learnSample `json:"samples"`
}

type learnReply struct {
	// Seq is the journal record that holds the change (0 when every sample
	// was already learned).
	Seq        uint64 `json:"seq"`
	Learned    int    `json:"learned"`
	Duplicates int    `json:"duplicates"`
	// ModelVersion is the version predictions are served from now; Visible
	// says whether it includes this change (false until the re-solve of a
	// head that solves per stage).
	ModelVersion uint64 `json:"model_version"`
	Visible      bool   `json:"visible"`
}

// readOnly refuses changes to an inference-only head (cl export): 409
// inference_only, before the request body is read.
func (s *Server) readOnly() error {
	if s.m.readOnly {
		return errf(409, "inference_only", "this server serves an %s", heads.ErrInferenceOnly)
	}
	return nil
}

func (s *Server) handleLearn(w http.ResponseWriter, r *http.Request) {
	if err := s.readOnly(); err != nil {
		writeErr(w, err)
		return
	}
	ss, err := s.readLearn(w, r)
	if err != nil {
		writeErr(w, err)
		return
	}
	rep, err := s.learn(ss)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, 200, rep)
}

func (s *Server) readLearn(w http.ResponseWriter, r *http.Request) ([]newSample, error) {
	mt, params := mediaType(r)
	var meta []learnSample
	var in inputs
	var err error
	switch {
	case strings.HasPrefix(mt, "image/"):
		q := r.URL.Query()
		meta = []learnSample{{ID: q.Get("id"), Class: q.Get("class")}}
		if meta[0].ID == "" || meta[0].Class == "" {
			return nil, errf(400, "missing_id_or_class", "an image body needs ?id=SAMPLE_ID&class=CLASS_NAME")
		}
		if _, _, err := s.m.checkNames(meta); err != nil {
			return nil, err
		}
		body, err := readBody(w, r, s.cfg.MaxBody)
		if err != nil {
			return nil, err
		}
		if in, err = s.decodeImages([]part{{data: body}}); err != nil {
			return nil, err
		}
	case mt == "multipart/form-data":
		js, parts, err := readMultipart(w, r, params, s.cfg.MaxBody, s.cfg.MaxImages, "samples")
		if err != nil {
			return nil, err
		}
		if js == nil {
			return nil, errf(400, "missing_samples", `multipart learn needs a field "samples": [{"id": …, "class": …}, …], one per image in order`)
		}
		if err := decodeJSON(js, &meta); err != nil {
			return nil, err
		}
		if len(meta) != len(parts) {
			return nil, errf(400, "count_mismatch", "%d samples described for %d images", len(meta), len(parts))
		}
		if _, _, err := s.m.checkNames(meta); err != nil {
			return nil, err
		}
		if in, err = s.decodeImages(parts); err != nil {
			return nil, err
		}
	case mt == "application/json":
		body, err := readBody(w, r, s.cfg.MaxBody)
		if err != nil {
			return nil, err
		}
		var req learnRequest
		if err := decodeJSON(body, &req); err != nil {
			return nil, err
		}
		rows := make([][]float32, len(req.Samples))
		for i, sm := range req.Samples {
			rows[i] = sm.Features
		}
		x, err := s.checkRows(rows, "samples")
		if err != nil {
			return nil, err
		}
		meta, in = req.Samples, inputs{n: len(rows), feats: x}
		if _, _, err := s.m.checkNames(meta); err != nil {
			return nil, err
		}
	default:
		return nil, unsupported(mt)
	}
	x, err := s.features(context.Background(), in, nil)
	if err != nil {
		return nil, err
	}
	s.recycle(in)
	ss := make([]newSample, len(meta))
	for i, m := range meta {
		ss[i] = newSample{ID: m.ID, Class: m.Class, X: x[i*s.dim : (i+1)*s.dim : (i+1)*s.dim]}
	}
	return ss, nil
}

// learn checks, applies and journals samples, and returns once the change
// is durable.
func (s *Server) learn(ss []newSample) (learnReply, error) {
	m := s.m
	m.mu.Lock()
	if err := s.failure(); err != nil {
		m.mu.Unlock()
		return learnReply{}, errf(503, "failed", "the server's journal failed (%v): it accepts no changes until restarted", err)
	}
	fresh, dups, err := m.checkLearn(ss, s.dim)
	if err != nil {
		m.mu.Unlock()
		return learnReply{}, err
	}
	var wait uint64 // the record that must be durable before replying
	for _, sm := range ss {
		if old, ok := m.st.byID[sm.ID]; ok {
			wait = max(wait, old.seq)
		}
	}
	rep := learnReply{Learned: len(fresh), Duplicates: dups}
	if len(fresh) > 0 {
		seq := s.st.j.LastSeq() + 1
		if err := m.applyLearn(seq, fresh); err != nil {
			m.mu.Unlock()
			return learnReply{}, err
		}
		if got, err := s.st.j.Append(encodeLearn(s.dim, fresh)); err != nil || got != seq {
			s.fail(fmt.Errorf("appending record %d: %v (got %d)", seq, err, got))
			m.mu.Unlock()
			return learnReply{}, errf(500, "journal", "the change could not be journaled: %v", err)
		}
		rep.Seq, wait = seq, seq
	}
	rep.ModelVersion, rep.Visible = m.version, m.immediate || len(fresh) == 0
	m.mu.Unlock()
	return rep, s.durable(wait, len(fresh) > 0)
}

// durable waits for record seq to be on disk, then schedules the re-solve
// and snapshot.
func (s *Server) durable(seq uint64, changed bool) error {
	if seq > 0 {
		if err := s.st.j.Wait(seq); err != nil {
			s.fail(err)
			return errf(500, "journal", "the change could not be made durable: %v", err)
		}
	}
	if changed {
		if !s.m.immediate {
			s.res.changed()
		}
		s.snap.add(1)
	}
	return nil
}

// checkNames validates ids and class names of a learn request before its
// images are run (the full check is checkLearn).
func (m *model) checkNames(meta []learnSample) (int, int, error) {
	if len(meta) == 0 {
		return 0, 0, errf(400, "no_samples", "the request has no samples")
	}
	seen := map[string]bool{}
	for i, sm := range meta {
		if e := checkName("id", sm.ID); e != nil {
			return 0, 0, e
		}
		if e := checkName("class", sm.Class); e != nil {
			return 0, 0, e
		}
		if seen[sm.ID] {
			return 0, 0, errf(400, "duplicate_id", "sample %d: id %q appears twice in the request", i, sm.ID)
		}
		seen[sm.ID] = true
	}
	return 0, 0, nil
}

type forgetReply struct {
	Seq          uint64 `json:"seq"`
	Samples      int    `json:"forgotten_samples"`
	Classes      int    `json:"forgotten_classes"`
	ModelVersion uint64 `json:"model_version"`
	Visible      bool   `json:"visible"`
}

func (s *Server) handleForget(w http.ResponseWriter, r *http.Request) {
	if err := s.readOnly(); err != nil {
		writeErr(w, err)
		return
	}
	mt, _ := mediaType(r)
	if mt != "application/json" {
		writeErr(w, errf(415, "unsupported_media_type", "forget takes application/json: {\"classes\": [...]} or {\"ids\": [...]}"))
		return
	}
	body, err := readBody(w, r, s.cfg.MaxBody)
	if err != nil {
		writeErr(w, err)
		return
	}
	var f forgetRecord
	if err := decodeJSON(body, &f); err != nil {
		writeErr(w, err)
		return
	}
	rep, err := s.forget(f)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, 200, rep)
}

func (s *Server) forget(f forgetRecord) (forgetReply, error) {
	m := s.m
	m.mu.Lock()
	if err := s.failure(); err != nil {
		m.mu.Unlock()
		return forgetReply{}, errf(503, "failed", "the server's journal failed (%v): it accepts no changes until restarted", err)
	}
	if err := m.checkForget(f); err != nil {
		m.mu.Unlock()
		return forgetReply{}, err
	}
	seq := s.st.j.LastSeq() + 1
	ns, nc, err := m.applyForget(seq, f)
	if err != nil {
		var ae *apiErr
		if !errors.As(err, &ae) {
			// A failure part-way: the head may be changed but nothing was
			// journaled. Refuse further changes; a restart rebuilds it.
			s.fail(err)
		}
		m.mu.Unlock()
		return forgetReply{}, err
	}
	if got, err := s.st.j.Append(encodeForget(f)); err != nil || got != seq {
		s.fail(fmt.Errorf("appending record %d: %v (got %d)", seq, err, got))
		m.mu.Unlock()
		return forgetReply{}, errf(500, "journal", "the change could not be journaled: %v", err)
	}
	rep := forgetReply{Seq: seq, Samples: ns, Classes: nc, ModelVersion: m.version, Visible: m.immediate}
	m.mu.Unlock()
	return rep, s.durable(seq, true)
}

type classInfo struct {
	Name    string `json:"name"`
	Samples int    `json:"samples"` // learned through the server (not the initial head's)
}

func (s *Server) handleClasses(w http.ResponseWriter, r *http.Request) {
	m := s.m
	m.mu.RLock()
	var out []classInfo
	for _, l := range m.head.Classes() {
		c := m.info.Classes[l]
		out = append(out, classInfo{Name: c, Samples: len(m.st.byClass[c])})
	}
	m.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	v, _ := s.version()
	writeJSON(w, 200, map[string]any{"model_version": v, "classes": nonNilSlice(out)})
}

func nonNilSlice[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

type modelReply struct {
	Backbone       string          `json:"backbone"`
	BackboneSHA256 string          `json:"backbone_sha256"`
	Preprocess     json.RawMessage `json:"preprocess"`
	Method         string          `json:"method"`
	Fingerprint    string          `json:"fingerprint"`
	Dim            int             `json:"dim"`
	Classes        int             `json:"classes"`
	Samples        int             `json:"samples"`
	JournalSeq     uint64          `json:"journal_seq"`
	ModelVersion   uint64          `json:"model_version"`
	PendingChanges int             `json:"pending_changes"`
	// InferenceOnly: the head was exported by cl export; learn and forget
	// are refused (409 inference_only).
	InferenceOnly bool   `json:"inference_only"`
	SolveError    string `json:"solve_error,omitempty"`
}

func (s *Server) handleModel(w http.ResponseWriter, r *http.Request) {
	m := s.m
	m.mu.RLock()
	rep := modelReply{Backbone: s.bbi.Name, BackboneSHA256: s.bbi.SHA256, Preprocess: json.RawMessage(m.info.Preprocess),
		Method: m.method, Fingerprint: m.info.Fingerprint, Dim: s.dim, Classes: len(m.head.Classes()),
		Samples: m.st.len(), JournalSeq: m.applied, PendingChanges: m.unsolved, InferenceOnly: m.readOnly}
	if m.solveErr != nil {
		rep.SolveError = m.solveErr.Error()
	}
	m.mu.RUnlock()
	rep.ModelVersion, _ = s.version()
	if !json.Valid(rep.Preprocess) {
		rep.Preprocess = json.RawMessage("null")
	}
	writeJSON(w, 200, rep)
}

type sampleInfo struct {
	ID    string `json:"id"`
	Class string `json:"class"`
	Seq   uint64 `json:"seq"`
}

// handleSamples lists the samples learned through the server, in learning
// order, a page at a time: ?after=N skips the first N, ?limit= (≤ 10000).
func (s *Server) handleSamples(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	after, limit := 0, 1000
	if v := q.Get("after"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeErr(w, errf(400, "bad_after", "after=%q: want a whole number ≥ 0", v))
			return
		}
		after = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 10000 {
			writeErr(w, errf(400, "bad_limit", "limit=%q: want 1 to 10000", v))
			return
		}
		limit = n
	}
	s.m.mu.RLock()
	all := s.m.st.ordered()
	total := len(all)
	var page []sampleInfo
	for i := after; i < min(after+limit, total); i++ {
		page = append(page, sampleInfo{ID: all[i].id, Class: all[i].class, Seq: all[i].seq})
	}
	s.m.mu.RUnlock()
	writeJSON(w, 200, map[string]any{"total": total, "samples": nonNilSlice(page)})
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, 200, map[string]string{"status": "ok"})
}

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	if err := s.failure(); err != nil {
		writeErr(w, errf(503, "failed", "the journal failed: %v", err))
		return
	}
	if !s.ready.Load() {
		writeErr(w, errf(503, "not_ready", "the server is starting or shutting down"))
		return
	}
	if _, ok := s.version(); !ok {
		writeErr(w, errf(503, "not_ready", "the head has not been solved yet"))
		return
	}
	writeJSON(w, 200, map[string]string{"status": "ready"})
}
