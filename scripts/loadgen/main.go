// Command loadgen measures a running `cl serve`: it posts images to
// /v1/predict at several concurrency levels and prints, per level, the
// images per second and the 50th and 99th percentile latencies. It is
// bounded: --requests per level and at most --duration per level. With
// --ref-ms NAME=MS,… it also prints p99 over each reference time (e.g.
// backbone=2.5,image=5.0: the single-image times --time-backbone measures).
//
//	go run ./scripts/loadgen --url http://127.0.0.1:8080 --data idx:IMAGES,LABELS --images 512 \
//	    --concurrency 1,8,64 --requests 2000 --duration 60s
//
// With --streams it interleaves, at concurrency 1, one request to each of
// several servers and one direct call of the backbone (--ref-model, the
// reference), turn by turn with the same image, so that every stream sees the
// same moments of a shared machine (scripts/serve-latency.sh).
//
// With --time-backbone MODEL.onnx it contacts no server: it times --runs
// direct single-image calls of the backbone on ONNX Runtime (--threads; idle
// threads not spinning, as cl serve runs it, unless --spin) on the same
// images, and the decoding and preprocessing of one image, and prints the
// medians (and the backbone's p99).
//
// Images come from any cl data spec (extract/data); raw pixels (IDX, CIFAR)
// are encoded once as PNG, so the server decodes them as it would a
// client's upload. Output: one line per level, and --json for programs.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	neturl "net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cl-dev/cl/extract/data"
)

type result struct {
	Concurrency  int     `json:"concurrency"`
	Requests     int     `json:"requests"`
	Errors       int     `json:"errors"`
	Seconds      float64 `json:"seconds"`
	ImagesPerSec float64 `json:"images_per_second"`
	P50ms        float64 `json:"p50_ms"`
	P99ms        float64 `json:"p99_ms"`
	// P99OverRef is P99ms over each --ref-ms time, by name.
	P99OverRef map[string]float64 `json:"p99_over_ref,omitempty"`
	// Phases is where the requests' time went, from the server's
	// Server-Timing header (phases.go).
	Phases []phase `json:"phases,omitempty"`
}

// parseRefs parses --ref-ms NAME=MS,… (in order).
func parseRefs(s string) ([]string, []float64, error) {
	if s == "" {
		return nil, nil, nil
	}
	var names []string
	var ms []float64
	for _, f := range strings.Split(s, ",") {
		n, v, ok := strings.Cut(strings.TrimSpace(f), "=")
		x, err := strconv.ParseFloat(v, 64)
		if !ok || n == "" || err != nil || x <= 0 {
			return nil, nil, fmt.Errorf("%q: want NAME=MILLISECONDS with a positive number", f)
		}
		names, ms = append(names, n), append(ms, x)
	}
	return names, ms, nil
}

func main() {
	url := flag.String("url", "http://127.0.0.1:8080", "server base URL")
	spec := flag.String("data", "", "cl data spec of the images to send (DIR, idx:IMAGES,LABELS, cifar10:DIR, list:FILE)")
	nImages := flag.Int("images", 256, "distinct images to cycle through")
	levels := flag.String("concurrency", "1,8,64", "comma-separated concurrency levels")
	requests := flag.Int("requests", 1000, "requests per level (one image each)")
	duration := flag.Duration("duration", time.Minute, "longest time per level")
	warmup := flag.Int("warmup", 20, "requests before each level, not measured")
	asJSON := flag.Bool("json", false, "print JSON")
	learn := flag.Int("learn", 0, "first teach the server this many of the images, with their labels (a server with no classes answers 409)")
	token := flag.String("token", os.Getenv("CL_SERVE_TOKEN"), "bearer token for --learn (default $CL_SERVE_TOKEN)")
	refs := flag.String("ref-ms", "", "reference times NAME=MS,… (e.g. backbone=2.5,image=5.0): print p99 / MS per level")
	model := flag.String("time-backbone", "", "time direct single-image calls of this backbone (.onnx) instead of a server")
	threads := flag.Int("threads", 0, "--time-backbone: ONNX Runtime intra-op threads (0 = all cores), as cl serve --threads")
	spin := flag.Bool("spin", false, "--time-backbone: let idle ONNX Runtime threads spin (cl serve with CL_SERVE_SPIN=1)")
	runs := flag.Int("runs", 300, "--time-backbone: measured calls (after --warmup calls)")
	streams := flag.String("streams", "", "interleave, at concurrency 1, turns of NAME=URL (a server) and NAME=backbone:THREADS[:spin] (--ref-model called directly: the reference), --requests turns each")
	refModel := flag.String("ref-model", "", "--streams: the backbone (.onnx) of backbone streams")
	flag.Parse()
	if *spec == "" {
		fmt.Fprintln(os.Stderr, "loadgen: --data is required")
		os.Exit(2)
	}
	imgs, err := loadImages(*spec, *nImages)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
	if *streams != "" {
		ss, err := parseStreams(*streams, *refModel)
		if err != nil {
			fmt.Fprintln(os.Stderr, "loadgen: --streams:", err)
			os.Exit(2)
		}
		for _, s := range ss {
			if s.url != "" {
				if err := teach(s.url, *token, imgs[:min(*learn, len(imgs))]); err != nil {
					fmt.Fprintln(os.Stderr, "loadgen: --learn:", s.url, err)
					os.Exit(1)
				}
			}
		}
		interleave(ss, imgs, *requests, *warmup)
		return
	}
	if *model != "" {
		t, err := timeBackbone(*model, *threads, *spin, imgs, *runs, *warmup)
		if err != nil {
			fmt.Fprintln(os.Stderr, "loadgen: --time-backbone:", err)
			os.Exit(1)
		}
		if *asJSON {
			json.NewEncoder(os.Stdout).Encode(t)
		} else {
			fmt.Printf("backbone_median_ms %.3f\nbackbone_p99_ms %.3f\npreprocess_median_ms %.3f\npreprocess_p99_ms %.3f\nimage_median_ms %.3f\nimage_p99_ms %.3f\nruns %d\n",
				t.BackboneMedianMs, t.BackboneP99Ms, t.PreprocessMedianMs, t.PreprocessP99Ms, t.ImageMedianMs, t.ImageP99Ms, t.Runs)
		}
		return
	}
	refNames, refMs, err := parseRefs(*refs)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen: --ref-ms:", err)
		os.Exit(2)
	}
	if err := teach(*url, *token, imgs[:min(*learn, len(imgs))]); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen: --learn:", err)
		os.Exit(1)
	}
	var out []result
	for _, f := range strings.Split(*levels, ",") {
		c, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || c < 1 {
			fmt.Fprintf(os.Stderr, "loadgen: --concurrency %q: want positive integers\n", *levels)
			os.Exit(2)
		}
		run(*url, imgs, c, *warmup, time.Minute)
		r := run(*url, imgs, c, *requests, *duration)
		out = append(out, r)
		for i, n := range refNames {
			if r.P99OverRef == nil {
				r.P99OverRef = map[string]float64{}
			}
			r.P99OverRef[n] = r.P99ms / refMs[i]
		}
		if !*asJSON {
			fmt.Printf("concurrency %3d: %6d requests (%d errors) in %6.2f s: %8.1f images/s, p50 %7.2f ms, p99 %7.2f ms",
				r.Concurrency, r.Requests, r.Errors, r.Seconds, r.ImagesPerSec, r.P50ms, r.P99ms)
			for _, n := range refNames {
				fmt.Printf(", p99/%s %.2f×", n, r.P99OverRef[n])
			}
			fmt.Println()
			if len(r.Phases) > 0 {
				fmt.Print("  phases ms (median; p99; mean of the slowest 1% of requests):")
				for _, p := range r.Phases {
					fmt.Printf(" %s %.3f; %.3f; %.3f", p.Name, p.MedianMs, p.P99Ms, p.TailMeanMs)
				}
				fmt.Println()
			}
		}
	}
	if *asJSON {
		json.NewEncoder(os.Stdout).Encode(out)
	}
}

type encoded struct {
	body  []byte
	ctype string
	id    string
	class string
}

// teach learns imgs one request each (id and class in the query).
func teach(url, token string, imgs []encoded) error {
	for _, im := range imgs {
		req, _ := http.NewRequest("POST", url+"/v1/learn?id="+neturl.QueryEscape(im.id)+"&class="+neturl.QueryEscape(im.class), bytes.NewReader(im.body))
		req.Header.Set("Content-Type", im.ctype)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("learn %s: %d %s", im.id, resp.StatusCode, b)
		}
	}
	return nil
}

func loadImages(spec string, n int) ([]encoded, error) {
	src, err := data.OpenFirst(spec, n)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	var out []encoded
	for i := 0; i < src.Len(); i++ {
		s, err := src.Load(i)
		if err != nil {
			return nil, err
		}
		class := "unlabelled"
		if l := src.Label(i); l >= 0 {
			class = src.Classes()[l]
		}
		if s.Encoded != nil {
			ct := http.DetectContentType(s.Encoded)
			if !strings.HasPrefix(ct, "image/") {
				ct = "image/jpeg"
			}
			out = append(out, encoded{s.Encoded, ct, src.ID(i), class})
			continue
		}
		var buf bytes.Buffer
		if err := png.Encode(&buf, rawImage(s.Raw)); err != nil {
			return nil, err
		}
		out = append(out, encoded{buf.Bytes(), "image/png", src.ID(i), class})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s has no images", spec)
	}
	return out, nil
}

func rawImage(r *data.Raw) image.Image {
	if r.C == 1 {
		return &image.Gray{Pix: r.Pix, Stride: r.W, Rect: image.Rect(0, 0, r.W, r.H)}
	}
	m := image.NewRGBA(image.Rect(0, 0, r.W, r.H))
	for i := 0; i < r.W*r.H; i++ {
		m.Set(i%r.W, i/r.W, color.RGBA{r.Pix[3*i], r.Pix[3*i+1], r.Pix[3*i+2], 255})
	}
	return m
}

// run sends n requests with c workers (or stops after d) and measures.
func run(url string, imgs []encoded, c, n int, d time.Duration) result {
	client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: c, MaxConnsPerHost: c}}
	var next atomic.Int64
	var errs atomic.Int64
	lat := make([][]time.Duration, c)
	timed := make([][]timedRequest, c)
	deadline := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < c; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) || time.Now().After(deadline) {
					return
				}
				tr, err := predict(client, url, imgs[int(i)%len(imgs)])
				if err != nil {
					errs.Add(1)
					continue
				}
				lat[w] = append(lat[w], tr.latency)
				timed[w] = append(timed[w], tr)
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	var all []time.Duration
	var reqs []timedRequest
	for w, l := range lat {
		all = append(all, l...)
		reqs = append(reqs, timed[w]...)
	}
	return result{Concurrency: c, Requests: len(all) + int(errs.Load()), Errors: int(errs.Load()), Seconds: el.Seconds(),
		ImagesPerSec: float64(len(all)) / el.Seconds(), P50ms: quantileMs(all, 0.50), P99ms: quantileMs(all, 0.99),
		Phases: phases(reqs)}
}
