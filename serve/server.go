package serve

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cl-dev/cl/extract/imageproc"
	"github.com/cl-dev/cl/features"
	"github.com/cl-dev/cl/heads"
	"github.com/cl-dev/cl/models"
)

// BackboneInfo describes the backbone for /v1/model and the feature
// fingerprint: its file's base name, sha256 and preprocessing.
type BackboneInfo struct {
	Name, SHA256 string
	// Fingerprint is models.Fingerprint of the graph and preprocessing
	// (ort.Backbone.Fingerprint).
	Fingerprint string
	Preprocess  models.Preprocess
}

// Server is a continual-learning model server: predictions, online
// learning and exact forgetting over HTTP, every change journaled before it
// is acknowledged.
type Server struct {
	cfg Config
	bb  Backbone
	bbi BackboneInfo
	dim int
	dec *imageDecoder
	b   *batcher
	m   *model
	st  *state
	met *metrics
	log *slog.Logger
	rec Recovered
	sem chan struct{} // MaxConcurrent
	// imgPool recycles single images' preprocessed room (*[]float32, imageBuf).
	imgPool sync.Pool
	mux     *http.ServeMux
	res     *resolver
	snap    snapshotter

	failMu sync.Mutex
	failed error // a journal write or fsync failed: no more changes
	ready  atomic.Bool
	closed atomic.Bool
}

// New opens the state folder (creating it from initial when empty: the
// initial head and its Info), replays the journal and builds the server.
// The backbone bb must produce features of the head's dimension and
// fingerprint; initial is called only for a new state folder.
func New(cfg Config, bb Backbone, bbi BackboneInfo, initial func() (heads.Head, heads.Info, error), log *slog.Logger) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pp, err := imageproc.NewPreprocessor(bbi.Preprocess)
	if err != nil {
		return nil, fmt.Errorf("backbone preprocessing: %w", err)
	}
	pre := pp.Preprocess().JSON()
	fresh := func() (heads.Head, heads.Info, error) {
		h, info, err := initial()
		if err == nil && len(h.Classes()) == 0 && info.ModelSHA256 == "" && info.Fingerprint == "" {
			// An empty head takes the backbone's feature space.
			info.Model, info.ModelSHA256, info.Preprocess, info.Fingerprint = bbi.Name, bbi.SHA256, pre, bbi.Fingerprint
			info.Dim = bb.Dim()
		}
		return h, info, err
	}
	st, m, rec, err := openState(cfg.StateDir, fresh, cfg.MaxSamples, log)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, bb: bb, bbi: bbi, dim: bb.Dim(), m: m, st: st, log: log, rec: rec,
		sem: make(chan struct{}, cfg.MaxConcurrent)}
	if err := s.checkFingerprint(pre); err != nil {
		st.close()
		return nil, err
	}
	s.dec = &imageDecoder{pp: pp, maxPixels: cfg.MaxPixels, sem: make(chan struct{}, runtime.GOMAXPROCS(0))}
	s.met = newMetrics(
		func() float64 { return float64(s.b.depth()) },
		func() float64 { m.mu.RLock(); defer m.mu.RUnlock(); return float64(m.st.len()) },
		func() float64 { v, _ := s.version(); return float64(v) })
	s.b = newBatcher(bb, pp.Len(), cfg.MaxBatch, cfg.MaxDelay, cfg.QueueImages, cfg.BatchWorkers, s.met.batch)
	s.res = newResolver(s, cfg.ResolveDelay, cfg.ResolveMaxDelay)
	s.snap.s = s
	s.snap.records = rec.Replayed // replayed records are not in the snapshot yet
	s.routes()
	s.ready.Store(true)
	return s, nil
}

// checkFingerprint refuses a head fitted on another feature space.
func (s *Server) checkFingerprint(pre string) error {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	info := &s.m.info
	bs := features.Space{Model: s.bbi.Name, ModelSHA256: s.bbi.SHA256, Preprocess: pre, Fingerprint: s.bbi.Fingerprint}
	if !features.Same(info.Space(), bs) {
		return fmt.Errorf("the head was fitted on features of %s but the backbone is %s: serve the head with its own backbone",
			info.Space(), bs)
	}
	info.Fingerprint = info.Space().Adopt(bs).Fingerprint
	if d := s.m.dim(); d != 0 && d != s.dim {
		return fmt.Errorf("the head has dimension %d but the backbone gives %d features", d, s.dim)
	}
	s.m.info.Dim = s.dim
	return nil
}

// Recovered reports what opening the state folder found.
func (s *Server) Recovered() Recovered { return s.rec }

// Handler is the server's HTTP handler (every route).
func (s *Server) Handler() http.Handler { return s.mux }

// version returns the served model version and whether a solved head is
// being served.
func (s *Server) version() (uint64, bool) {
	if s.m.immediate {
		s.m.mu.RLock()
		defer s.m.mu.RUnlock()
		return s.m.version, true
	}
	s.m.servMu.RLock()
	defer s.m.servMu.RUnlock()
	return s.m.serving.version, s.m.serving.h != nil
}

// fail puts the server into the failed state after a journal error: the
// state on disk is unknown, so no further change is accepted.
func (s *Server) fail(err error) {
	s.failMu.Lock()
	defer s.failMu.Unlock()
	if s.failed == nil {
		s.failed = err
		s.ready.Store(false)
		s.log.Error("journal failed: refusing further changes; restart the server to recover from the journal", "err", err)
	}
}

func (s *Server) failure() error {
	s.failMu.Lock()
	defer s.failMu.Unlock()
	return s.failed
}

// Serve accepts connections on l until ctx is done, then shuts down
// gracefully: stops accepting, drains the requests in flight (at most
// Config.ShutdownTimeout), flushes the journal and writes a snapshot. With
// tlsCfg != nil it serves HTTPS.
func (s *Server) Serve(ctx context.Context, l net.Listener, tlsCfg *tls.Config) error {
	return serveHTTP(ctx, l, tlsCfg, s.cfg, s.Handler(), s.log, &s.ready, s.Close)
}

// serveHTTP serves h on l with cfg's timeouts (HTTPS with tlsCfg != nil)
// until ctx is done; then it marks the server not ready, drains the
// requests in flight for at most cfg.ShutdownTimeout and calls closeFn. It
// returns the first error of serving, draining and closeFn; nil after a
// clean shutdown.
func serveHTTP(ctx context.Context, l net.Listener, tlsCfg *tls.Config, cfg Config, h http.Handler, log *slog.Logger,
	ready *atomic.Bool, closeFn func() error) error {
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		TLSConfig:         tlsCfg,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() {
		if tlsCfg != nil {
			errc <- hs.ServeTLS(l, "", "")
		} else {
			errc <- hs.Serve(l)
		}
	}()
	var serveErr error
	select {
	case err := <-errc:
		serveErr = err
	case <-ctx.Done():
		log.Info("shutting down: draining requests in flight")
		ready.Store(false)
		sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		serveErr = hs.Shutdown(sctx)
		cancel()
		if errors.Is(serveErr, context.DeadlineExceeded) {
			serveErr = fmt.Errorf("requests still running after %v were cut off", cfg.ShutdownTimeout)
			hs.Close()
		}
	}
	if err := closeFn(); err != nil && serveErr == nil {
		serveErr = err
	}
	if errors.Is(serveErr, http.ErrServerClosed) {
		serveErr = nil
	}
	return serveErr
}

// Close stops the batcher and resolver, re-solves and snapshots what is
// pending (when the journal is healthy) and closes the journal.
func (s *Server) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.ready.Store(false)
	s.res.close()
	s.b.close()
	var err error
	if s.failure() == nil {
		s.m.mu.Lock()
		if e := s.m.solve(); e != nil {
			s.log.Warn("re-solve at shutdown failed", "err", e)
		}
		s.m.mu.Unlock()
		s.snap.wait()
		if s.snap.due() > 0 {
			err = s.st.snapshot(s.m)
		}
	}
	if e := s.st.close(); err == nil {
		err = e
	}
	return err
}

// snapshotter takes a snapshot in the background every SnapshotEvery
// journal records, one at a time.
type snapshotter struct {
	s       *Server
	mu      sync.Mutex
	records int
	running bool
	wg      sync.WaitGroup
}

func (p *snapshotter) due() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.records
}

// add counts n new records and starts a snapshot when enough are due.
func (p *snapshotter) add(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.records += n
	if p.running || p.records < p.s.cfg.SnapshotEvery {
		return
	}
	p.running = true
	p.records = 0
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		start := time.Now()
		err := p.s.st.snapshot(p.s.m)
		p.mu.Lock()
		p.running = false
		p.mu.Unlock()
		if err != nil {
			p.s.log.Error("snapshot failed (the journal keeps every change; retrying after the next records)", "err", err)
			return
		}
		p.s.log.Info("snapshot written", "seconds", time.Since(start).Seconds())
	}()
}

func (p *snapshotter) wait() { p.wg.Wait() }
