package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/cl-dev/cl/heads"
	"github.com/cl-dev/cl/models/ort"
	"github.com/cl-dev/cl/serve"
)

func init() {
	d := serve.DefaultConfig()
	register(&cli.Command{
		Name:         "serve",
		OnUsageError: onUsageError,
		Usage:        "serve a backbone and a head over HTTP: predict, learn and forget online, crash-safe",
		ArgsUsage:    " ",
		Description: "Serves /v1/predict, /v1/learn, /v1/forget, /v1/classes, /v1/model, /v1/samples, /healthz,\n" +
			"/readyz, /metrics and /openapi.json (docs/SERVE.md). Every learn and forget is journaled in --state\n" +
			"and fsynced before it is acknowledged; the state folder is loaded and its journal replayed at start.\n" +
			"The first start takes the head from --head (a head file) or creates an empty one with --method;\n" +
			"later starts use the state folder. learn and forget need the bearer token from --token-file or $" + serve.TokenEnv + "\n" +
			"unless --insecure-no-auth is given. SIGTERM or Ctrl-C drains requests, flushes the journal and\n" +
			"writes a snapshot. With --learner (a file of cl fit --learner: l2p, dualprompt, coda-prompt, ease,\n" +
			"aper-*, ranpac-phase1) and --weights it serves that learner instead: predict from images only, no\n" +
			"state folder; learn and forget answer 409, since these methods learn in stages (cl fit --learner),\n" +
			"not online.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "model", Usage: "backbone `FILE` (.onnx with a cl manifest; required unless --learner)", TakesFile: true},
			&cli.StringFlag{Name: "head", Usage: "initial head `FILE` (.safetensors; first start only; or --method)", TakesFile: true},
			&cli.StringFlag{Name: "method", Usage: "create an empty head of `METHOD` on first start: " + strings.Join(heads.Methods(), ", ")},
			setFlag("method option key=value when creating the head with --method (repeatable)"),
			&cli.StringFlag{Name: "state", Usage: "state folder `DIR`: snapshot and journal (required unless --learner)"},
			&cli.StringFlag{Name: "listen", Value: "127.0.0.1:8080", Usage: "`ADDRESS` (host:port) to listen on"},
			&cli.StringFlag{Name: "token-file", Usage: "`FILE` holding the bearer token for learn and forget (else $" + serve.TokenEnv + ")", TakesFile: true},
			&cli.BoolFlag{Name: "insecure-no-auth", Usage: "serve learn and forget without a token (only on a trusted network)"},
			&cli.StringFlag{Name: "tls-cert", Usage: "certificate `FILE` (PEM) to serve HTTPS", TakesFile: true},
			&cli.StringFlag{Name: "tls-key", Usage: "private key `FILE` (PEM) for --tls-cert", TakesFile: true},
			&cli.IntFlag{Name: "max-batch", Value: d.MaxBatch, Usage: "largest backbone batch, `N` images"},
			&cli.DurationFlag{Name: "max-delay", Value: d.MaxDelay, Usage: "how long (`DURATION`) a batch waits for more images"},
			&cli.IntFlag{Name: "queue", Value: d.QueueImages, Usage: "`N` images that may wait for the backbone (more: 503)"},
			&cli.IntFlag{Name: "batch-workers", Value: d.BatchWorkers, Usage: "`N` backbone batches run at once"},
			&cli.BoolFlag{Name: "ort-spin", Usage: "let ONNX Runtime's idle threads spin-wait for work (as $CL_SERVE_SPIN=1; by default they sleep, leaving the CPU to decoding and HTTP)"},
			&cli.Int64Flag{Name: "max-body", Value: d.MaxBody, Usage: "largest request body in `BYTES`"},
			&cli.Int64Flag{Name: "max-pixels", Value: d.MaxPixels, Usage: "largest image in `PIXELS` (width × height), checked before decoding"},
			&cli.IntFlag{Name: "max-images", Value: d.MaxImages, Usage: "most images or feature rows per request (`N`)"},
			&cli.IntFlag{Name: "max-concurrent", Value: d.MaxConcurrent, Usage: "`N` requests handled at once (more: 503)"},
			&cli.IntFlag{Name: "max-samples", Value: d.MaxSamples, Usage: "most samples (`N`) learned through the server (their features stay in memory)"},
			&cli.IntFlag{Name: "snapshot-every", Value: d.SnapshotEvery, Usage: "`N` journal records between snapshots"},
			&cli.DurationFlag{Name: "resolve-delay", Value: d.ResolveDelay, Usage: "re-solve RanPAC/LDA/FeCAM `DURATION` after the last change"},
			&cli.DurationFlag{Name: "resolve-max-delay", Value: d.ResolveMaxDelay, Usage: "but no later than `DURATION` after the first unsolved change"},
			&cli.DurationFlag{Name: "read-timeout", Value: d.ReadTimeout, Usage: "`DURATION` to read a whole request"},
			&cli.DurationFlag{Name: "write-timeout", Value: d.WriteTimeout, Usage: "`DURATION` to handle a request and write the reply"},
			&cli.DurationFlag{Name: "shutdown-timeout", Value: d.ShutdownTimeout, Usage: "`DURATION` to drain requests on SIGTERM"},
		}, append(learnerFlags("to serve for prediction instead of --model and --head; learn and forget are refused"), ortFlags()...)...),
		Action: func(c *cli.Context) error {
			learner := c.IsSet("learner")
			if learner {
				for _, f := range []string{"model", "head", "method", "set", "state"} {
					if c.IsSet(f) {
						return usageErrorf("--learner serves a learner file in the ViT of --weights: --%s is for heads", f)
					}
				}
			} else if err := requireFlags(c, "model", "state"); err != nil {
				return err
			}
			if c.Args().Present() {
				return usageErrorf("serve takes no arguments (got %q)", c.Args().First())
			}
			cfg := serve.Config{
				StateDir: c.String("state"), Insecure: c.Bool("insecure-no-auth"),
				MaxBatch: c.Int("max-batch"), MaxDelay: c.Duration("max-delay"), QueueImages: c.Int("queue"),
				BatchWorkers: c.Int("batch-workers"), MaxBody: c.Int64("max-body"), MaxPixels: c.Int64("max-pixels"),
				MaxImages: c.Int("max-images"), MaxConcurrent: c.Int("max-concurrent"), MaxSamples: c.Int("max-samples"),
				SnapshotEvery: c.Int("snapshot-every"), ResolveDelay: c.Duration("resolve-delay"),
				ResolveMaxDelay: c.Duration("resolve-max-delay"), ReadTimeout: c.Duration("read-timeout"),
				WriteTimeout: c.Duration("write-timeout"), ShutdownTimeout: c.Duration("shutdown-timeout"),
			}
			for _, n := range []string{"max-batch", "queue", "batch-workers", "max-images", "max-concurrent", "max-samples", "snapshot-every"} {
				if c.Int(n) < 1 {
					return usageErrorf("--%s %d: must be at least 1", n, c.Int(n))
				}
			}
			for _, n := range []string{"max-body", "max-pixels"} {
				if c.Int64(n) < 1 {
					return usageErrorf("--%s %d: must be at least 1", n, c.Int64(n))
				}
			}
			for _, n := range []string{"max-delay", "resolve-delay", "resolve-max-delay", "read-timeout", "write-timeout", "shutdown-timeout"} {
				if c.Duration(n) <= 0 {
					return usageErrorf("--%s %v: must be positive", n, c.Duration(n))
				}
			}
			if c.IsSet("head") && c.IsSet("method") {
				return usageErrorf("give --head (a head file) or --method (a new empty head), not both")
			}
			if c.IsSet("tls-cert") != c.IsSet("tls-key") {
				return usageErrorf("--tls-cert and --tls-key go together")
			}
			o := serveOptions{
				Model: c.String("model"), Head: c.String("head"), Method: strings.ToLower(c.String("method")), Set: setPairs(c),
				Listen: c.String("listen"), TokenFile: c.String("token-file"), TLSCert: c.String("tls-cert"), TLSKey: c.String("tls-key"),
				Config: cfg, ORT: backboneOptions(c), Spin: c.Bool("ort-spin") || os.Getenv("CL_SERVE_SPIN") != "",
			}
			if learner {
				b, err := learnerBackboneFrom(c)
				if err != nil {
					return err
				}
				o.Learner, o.LearnerBackbone = c.String("learner"), b
				return runServeLearner(c.Context, o, c.App.Writer, c.App.ErrWriter)
			}
			return runServe(c.Context, o, c.App.Writer, c.App.ErrWriter)
		},
	})
}

// serveOptions is everything `cl serve` needs.
type serveOptions struct {
	Model, Head, Method string
	Set                 [][2]string
	Listen, TokenFile   string
	TLSCert, TLSKey     string
	Config              serve.Config
	ORT                 ort.Options
	// Spin lets ONNX Runtime's idle threads spin (--ort-spin or
	// $CL_SERVE_SPIN); by default they sleep (ort.Options.NoSpinning).
	Spin bool
	// Learner, when set, is a learner file served instead of Model and a
	// head (cl serve --learner), in the ViT of LearnerBackbone.
	Learner         string
	LearnerBackbone learnerBackbone
}

// readToken reads the bearer token from file (first line, trimmed) or, with
// no file, from $CL_SERVE_TOKEN.
func readToken(file string) (string, error) {
	if file == "" {
		return strings.TrimSpace(os.Getenv(serve.TokenEnv)), nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("--token-file: %w", err)
	}
	tok, _, _ := strings.Cut(string(b), "\n")
	tok = strings.TrimSpace(tok)
	if tok == "" {
		return "", fmt.Errorf("--token-file %s is empty: write a long random token into it (e.g. `head -c 32 /dev/urandom | base64 > %s`)", file, file)
	}
	if len(tok) < 16 {
		return "", fmt.Errorf("--token-file %s: the token has %d characters; use at least 16", file, len(tok))
	}
	return tok, nil
}

// initialHead returns how to build the head of a new state folder.
func (o serveOptions) initialHead() func() (heads.Head, heads.Info, error) {
	return func() (heads.Head, heads.Info, error) {
		switch {
		case o.Head != "":
			h, info, err := heads.Load(o.Head)
			if err != nil {
				return nil, heads.Info{}, fmt.Errorf("--head: %w", err)
			}
			return h, info, nil
		case o.Method != "":
			spec, ok := heads.Lookup(o.Method)
			if !ok {
				return nil, heads.Info{}, UsageError{fmt.Errorf("--method %s: unknown (one of %s)", o.Method, strings.Join(heads.Methods(), ", "))}
			}
			cfg, err := spec.Parse(o.Set)
			if err != nil {
				return nil, heads.Info{}, UsageError{fmt.Errorf("--set: %w", err)}
			}
			h, err := spec.New(cfg)
			if err != nil {
				return nil, heads.Info{}, UsageError{fmt.Errorf("--set: %w", err)}
			}
			return h, heads.Info{}, nil
		}
		return nil, heads.Info{}, UsageError{fmt.Errorf("--state %s holds no state yet: give --head HEAD.safetensors or --method NAME for the first start", o.Config.StateDir)}
	}
}

func runServe(ctx context.Context, o serveOptions, stdout, stderr io.Writer) error {
	log := newLogger(stderr)
	tok, err := readToken(o.TokenFile)
	if err != nil {
		return err
	}
	o.Config.Token = tok
	if tok == "" && !o.Config.Insecure {
		return usageErrorf("no token: give --token-file FILE (or set $%s), or --insecure-no-auth to let anyone who can connect learn and forget", serve.TokenEnv)
	}
	if _, err := os.Stat(filepath.Join(o.Config.StateDir, "state.json")); err == nil && (o.Head != "" || o.Method != "") {
		log.Info("the state folder already holds a model; --head/--method are used only on the first start", "state", o.Config.StateDir)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("--state: %w", err)
	}
	tlsCfg, err := o.tlsConfig()
	if err != nil {
		return err
	}
	o.ORT.NoSpinning = !o.Spin
	bb, err := ort.Open(o.Model, o.ORT)
	if err != nil {
		return fmt.Errorf("--model: %w", err)
	}
	defer bb.Close()
	start := time.Now()
	s, err := serve.New(o.Config, bb, serve.BackboneInfo{Name: filepath.Base(o.Model), SHA256: bb.SHA256(),
		Fingerprint: bb.Fingerprint(), Preprocess: bb.Manifest().Preprocess}, o.initialHead(), log)
	if err != nil {
		return err
	}
	rec := s.Recovered()
	l, err := net.Listen("tcp", o.Listen)
	if err != nil {
		s.Close()
		return fmt.Errorf("--listen %s: %w", o.Listen, err)
	}
	scheme := "http"
	if tlsCfg != nil {
		scheme = "https"
	}
	log.Info("serving", "url", scheme+"://"+l.Addr().String(), "model", o.Model, "device", bb.Device().String(),
		"created", rec.Created, "snapshot_seq", rec.SnapshotSeq, "replayed", rec.Replayed,
		"dropped_bytes", rec.Journal.Dropped, "start_seconds", fmt.Sprintf("%.2f", time.Since(start).Seconds()))
	fmt.Fprintf(stdout, "listening on %s://%s\n", scheme, l.Addr())
	if err := s.Serve(ctx, l, tlsCfg); err != nil {
		return err
	}
	log.Info("stopped cleanly: journal flushed, snapshot written")
	return nil
}

// tlsConfig loads --tls-cert and --tls-key (nil without --tls-cert: plain
// HTTP).
func (o serveOptions) tlsConfig() (*tls.Config, error) {
	if o.TLSCert == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(o.TLSCert, o.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}
