package serve

import (
	"fmt"
	"time"
)

// Config is everything the server's behaviour depends on besides the
// backbone and the head. Zero values mean the defaults of DefaultConfig.
type Config struct {
	// StateDir is the state folder (see state.go).
	StateDir string
	// Token is the bearer token the mutating routes (learn, forget) require;
	// "" with Insecure = true serves them without authentication.
	Token    string
	Insecure bool

	// MaxBatch is the largest backbone batch in images (default 16: at
	// concurrency 64 on 2 CPU cores, 0.92–0.98 × cl extract's images/s
	// against 0.77–0.90 × with 4, docs/SERVE.md "Batch size"); MaxDelay how long
	// the batcher waits for more images once it has one. QueueImages bounds
	// the images waiting for the backbone: a request that does not fit gets
	// 503 with Retry-After. BatchWorkers batches run at once.
	MaxBatch     int
	MaxDelay     time.Duration
	QueueImages  int
	BatchWorkers int

	// MaxBody is the largest request body in bytes; MaxPixels the largest
	// image (width × height, checked from the header before decoding);
	// MaxImages the most images (or feature rows) in one request;
	// MaxConcurrent the requests handled at once (more get 503).
	MaxBody       int64
	MaxPixels     int64
	MaxImages     int
	MaxConcurrent int
	// MaxTop is the largest k a predict may ask for.
	MaxTop int

	// MaxSamples bounds the samples learned through the server that it
	// keeps (their features: about MaxSamples·D·4 bytes).
	MaxSamples int
	// SnapshotEvery is the number of journal records between snapshots.
	SnapshotEvery int
	// ResolveDelay and ResolveMaxDelay schedule the re-solve of heads that
	// solve per stage: ResolveDelay after the last change, but no later
	// than ResolveMaxDelay after the first unsolved one.
	ResolveDelay    time.Duration
	ResolveMaxDelay time.Duration

	// ReadHeaderTimeout, ReadTimeout, WriteTimeout and IdleTimeout are the
	// http.Server's; ShutdownTimeout bounds the drain on SIGTERM.
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout, ShutdownTimeout time.Duration
}

// DefaultConfig returns the defaults documented in docs/SERVE.md.
func DefaultConfig() Config {
	return Config{
		MaxBatch: 16, MaxDelay: 2 * time.Millisecond, QueueImages: 256, BatchWorkers: 1,
		MaxBody: 16 << 20, MaxPixels: 24_000_000, MaxImages: 64, MaxConcurrent: 64, MaxTop: 100,
		MaxSamples: 100_000, SnapshotEvery: 10_000,
		ResolveDelay: time.Second, ResolveMaxDelay: 10 * time.Second,
		ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 60 * time.Second, WriteTimeout: 120 * time.Second,
		IdleTimeout: 120 * time.Second, ShutdownTimeout: 30 * time.Second,
	}
}

// withDefaults fills zero fields from DefaultConfig and validates.
func (c Config) withDefaults() (Config, error) {
	d := DefaultConfig()
	fill := func(v *int, dv int) {
		if *v == 0 {
			*v = dv
		}
	}
	fill64 := func(v *int64, dv int64) {
		if *v == 0 {
			*v = dv
		}
	}
	fillD := func(v *time.Duration, dv time.Duration) {
		if *v == 0 {
			*v = dv
		}
	}
	fill(&c.MaxBatch, d.MaxBatch)
	fillD(&c.MaxDelay, d.MaxDelay)
	fill(&c.QueueImages, d.QueueImages)
	fill(&c.BatchWorkers, d.BatchWorkers)
	fill64(&c.MaxBody, d.MaxBody)
	fill64(&c.MaxPixels, d.MaxPixels)
	fill(&c.MaxImages, d.MaxImages)
	fill(&c.MaxConcurrent, d.MaxConcurrent)
	fill(&c.MaxTop, d.MaxTop)
	fill(&c.MaxSamples, d.MaxSamples)
	fill(&c.SnapshotEvery, d.SnapshotEvery)
	fillD(&c.ResolveDelay, d.ResolveDelay)
	fillD(&c.ResolveMaxDelay, d.ResolveMaxDelay)
	fillD(&c.ReadHeaderTimeout, d.ReadHeaderTimeout)
	fillD(&c.ReadTimeout, d.ReadTimeout)
	fillD(&c.WriteTimeout, d.WriteTimeout)
	fillD(&c.IdleTimeout, d.IdleTimeout)
	fillD(&c.ShutdownTimeout, d.ShutdownTimeout)
	switch {
	case c.StateDir == "":
		return c, fmt.Errorf("the state folder is required (--state DIR)")
	case c.Token == "" && !c.Insecure:
		return c, fmt.Errorf("no token: give --token-file FILE (or $%s), or --insecure-no-auth to serve learn and forget to anyone who can connect", TokenEnv)
	case c.MaxBatch < 1 || c.QueueImages < c.MaxBatch:
		return c, fmt.Errorf("batching: --max-batch %d must be ≥ 1 and --queue (%d images) at least one batch; raise --queue or lower --max-batch (default 16)", c.MaxBatch, c.QueueImages)
	case c.MaxImages < 1 || c.MaxImages > c.QueueImages:
		return c, fmt.Errorf("max images per request %d must be between 1 and the queue size %d", c.MaxImages, c.QueueImages)
	case c.MaxBody < 1 || c.MaxPixels < 1 || c.MaxConcurrent < 1 || c.MaxSamples < 1 || c.SnapshotEvery < 1 || c.BatchWorkers < 1 || c.MaxTop < 1:
		return c, fmt.Errorf("limits must be positive")
	}
	return c, nil
}

// TokenEnv is the environment variable the bearer token may come from.
const TokenEnv = "CL_SERVE_TOKEN"
