package serve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// preprocessed returns the committed test images preprocessed for the
// tiny ViT, [n, 3, 32, 32].
func preprocessed(t *testing.T, ts *testServer) ([]float32, int) {
	t.Helper()
	in, err := ts.s.decodeImages(tinyImages(t))
	if err != nil {
		t.Fatal(err)
	}
	return in.images, in.n
}

// TestBatcherGathers: concurrent single-image jobs, all reserved (being
// decoded) before the first is queued, are gathered into one backbone batch
// (one worker, a long delay window, batch size = job count), and every job
// gets exactly the features its image gives alone.
func TestBatcherGathers(t *testing.T) {
	ts := startServer(t, t.TempDir(), Config{}, newHead(t, "simplecil"))
	x, n := preprocessed(t, ts)
	per := len(x) / n
	alone := make([][]float32, n)
	for i := 0; i < n; i++ {
		y, err := ts.bb.Run(x[i*per:(i+1)*per], 1)
		if err != nil {
			t.Fatal(err)
		}
		alone[i] = y
	}
	var mu sync.Mutex
	var sizes []int
	b := newBatcher(ts.bb, per, n, 10*time.Second, 4*n, 1, func(k int, _ time.Duration) {
		mu.Lock()
		sizes = append(sizes, k)
		mu.Unlock()
	})
	defer b.close()
	// Every request reserves its room before it decodes: all n are coming
	// before the first is queued, so the worker gathers them all.
	for i := 0; i < n; i++ {
		if err := b.reserve(1); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	got := make([][]float32, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			y, err := b.runReserved(context.Background(), x[i*per:(i+1)*per], 1, nil)
			if err != nil {
				t.Error(err)
			}
			got[i] = y
		}()
	}
	wg.Wait()
	if len(sizes) != 1 || sizes[0] != n {
		t.Errorf("batches %v, want one batch of %d", sizes, n)
	}
	for i := range got {
		for j := range got[i] {
			if d := got[i][j] - alone[i][j]; d > 1e-5 || d < -1e-5 {
				t.Fatalf("image %d feature %d: %v in the batch, %v alone", i, j, got[i][j], alone[i][j])
			}
		}
	}
	if b.depth() != 0 {
		t.Errorf("queue depth %d after every job finished", b.depth())
	}
}

// fakeTimer is a gather timer stepped by the test: armed receives the
// channel of every window a worker opens; sending on it closes the window.
type fakeTimer struct{ armed chan chan time.Time }

func newFakeTimer() *fakeTimer { return &fakeTimer{armed: make(chan chan time.Time, 16)} }

func (f *fakeTimer) after(time.Duration) (<-chan time.Time, func() bool) {
	c := make(chan time.Time, 1)
	f.armed <- c
	return c, func() bool { return true }
}

// batchSizes records the size of every backbone batch.
type batchSizes struct {
	mu    sync.Mutex
	sizes []int
}

func (s *batchSizes) add(k int, _ time.Duration) {
	s.mu.Lock()
	s.sizes = append(s.sizes, k)
	s.mu.Unlock()
}

func (s *batchSizes) get() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int(nil), s.sizes...)
}

// TestBatcherLoneRequest: with a one-hour gather delay, a lone request
// (nothing else reserved, queued or running) runs at once: its batch is
// dispatched without opening a gather window at all. Requests on their way
// (reserved, being decoded) are waited for: they join the batch when they
// come, or the worker stops waiting when they are released (a decode
// error) or when the window closes. No clock is involved: the window is a
// fake timer, so none of this depends on timing.
func TestBatcherLoneRequest(t *testing.T) {
	ts := startServer(t, t.TempDir(), Config{}, newHead(t, "simplecil"))
	x, _ := preprocessed(t, ts)
	per := ts.s.dec.pp.Len()
	ft := newFakeTimer()
	var bs batchSizes
	b := newBatcherTimer(ts.bb, per, 4, time.Hour, 16, 1, bs.add, ft.after)
	defer b.close()
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		noWindow(t, ft, "a lone request", func() {
			if _, err := b.run(ctx, x[:per], 1); err != nil {
				t.Error(err)
			}
		})
	}
	if len(ft.armed) != 0 || fmt.Sprint(bs.get()) != "[1 1 1]" {
		t.Fatalf("lone requests: %d gather windows opened, batches %v; want none, [1 1 1]", len(ft.armed), bs.get())
	}

	// Two requests reserved: the first waits for the second.
	run := func(i int, done chan<- struct{}) {
		go func() {
			if _, err := b.runReserved(ctx, x[i*per:(i+1)*per], 1, nil); err != nil {
				t.Error(err)
			}
			done <- struct{}{}
		}()
	}
	done := make(chan struct{}, 4)
	b.reserve(1)
	b.reserve(1)
	run(0, done)
	<-ft.armed // the worker holds image 0 and waits for image 1
	run(1, done)
	<-done
	<-done
	if got := bs.get()[3:]; fmt.Sprint(got) != "[2]" {
		t.Fatalf("two reserved requests: batches %v, want [2]", got)
	}
	// The second is released (its image did not decode): no more waiting.
	b.reserve(1)
	b.reserve(1)
	run(0, done)
	<-ft.armed
	b.release(1)
	<-done
	if got := bs.get()[4:]; fmt.Sprint(got) != "[1]" {
		t.Fatalf("a released reservation: batches %v, want [1]", got)
	}
	// The second comes after the window closed: two batches.
	b.reserve(1)
	b.reserve(1)
	run(0, done)
	(<-ft.armed) <- time.Time{}
	<-done
	run(1, done)
	<-done
	if got := bs.get()[5:]; fmt.Sprint(got) != "[1 1]" || len(ft.armed) != 0 {
		t.Fatalf("a window that closed: batches %v, %d more windows; want [1 1], none", got, len(ft.armed))
	}

	// Through the server with --max-delay 1h (and its gather timer
	// replaced by the fake one): a lone learn and predict from images run
	// at once, as batches of 1.
	one := startServer(t, t.TempDir(), Config{Insecure: true, MaxDelay: time.Hour}, newHead(t, "simplecil"))
	one.s.b.close()
	one.s.b = newBatcherTimer(one.bb, per, one.s.cfg.MaxBatch, one.s.cfg.MaxDelay, one.s.cfg.QueueImages, 1, one.s.met.batch, ft.after)
	im := tinyImages(t)[0]
	noWindow(t, ft, "a lone learn", func() { must(t, one.do("POST", "/v1/learn?id=a&class=c", "image/jpeg", im.data, ""), 200) })
	noWindow(t, ft, "a lone predict", func() { must(t, one.do("POST", "/v1/predict", "image/jpeg", im.data, ""), 200) })
	m := string(must(t, one.get("/metrics"), 200).body)
	if !strings.Contains(m, "cl_serve_batch_images_count 2\n") || !strings.Contains(m, "cl_serve_batch_images_sum 2\n") {
		t.Errorf("batches:\n%s", grepLines(m, "cl_serve_batch_images"))
	}
}

// noWindow runs f and fails if a gather window opens before f returns
// (closing that window so that f can finish): whichever happens first
// decides, no clock.
func noWindow(t *testing.T, ft *fakeTimer, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case c := <-ft.armed:
		c <- time.Time{}
		<-done
		t.Fatalf("%s opened a gather window: it would wait --max-delay", what)
	}
}

// TestBatcherLargeJob: a job larger than the batch size runs in chunks and
// comes back whole and in order.
func TestBatcherLargeJob(t *testing.T) {
	ts := startServer(t, t.TempDir(), Config{}, newHead(t, "simplecil"))
	x, n := preprocessed(t, ts)
	per := len(x) / n
	var sizes []int
	b := newBatcher(ts.bb, per, 4, time.Millisecond, 64, 1, func(k int, _ time.Duration) { sizes = append(sizes, k) })
	defer b.close()
	y, err := b.run(context.Background(), x, n)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := ts.bb.Run(x, n)
	if len(y) != len(want) || len(sizes) != 2 || sizes[0] != 4 || sizes[1] != n-4 {
		t.Fatalf("%d values (want %d), batches %v (want [4 %d])", len(y), len(want), sizes, n-4)
	}
	for i := range y {
		if d := y[i] - want[i]; d > 1e-5 || d < -1e-5 {
			t.Fatalf("value %d: %v chunked, %v in one run", i, y[i], want[i])
		}
	}
}

// TestQueueFull: when the images waiting do not fit in the queue, predict
// answers 503 with Retry-After at once, and the rejection is counted.
func TestQueueFull(t *testing.T) {
	ts := startServer(t, t.TempDir(), Config{}, newHead(t, "simplecil"))
	imgs := tinyImages(t)
	// A batcher with no worker: the first image waits forever, filling the
	// one-image queue.
	stalled := newBatcher(ts.bb, ts.s.dec.pp.Len(), 1, time.Millisecond, 1, 0, nil)
	ts.s.b.close()
	ts.s.b = stalled
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		req, _ := http.NewRequestWithContext(ctx, "POST", ts.ts.URL+"/v1/predict", strings.NewReader(string(imgs[0].data)))
		req.Header.Set("Content-Type", "image/jpeg")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	for stalled.depth() == 0 {
		time.Sleep(time.Millisecond)
	}
	r := ts.do("POST", "/v1/predict", "image/jpeg", imgs[0].data, "")
	if r.code != 503 || r.errCode() != "queue_full" || r.hdr.Get("Retry-After") == "" {
		t.Fatalf("full queue: %d %q Retry-After %q", r.code, r.body, r.hdr.Get("Retry-After"))
	}
	if _, err := stalled.run(context.Background(), make([]float32, ts.s.dec.pp.Len()), 1); !errors.Is(err, errQueueFull) {
		t.Fatalf("batcher.run on a full queue: %v", err)
	}
	cancel()
	<-done
	m := string(must(t, ts.get("/metrics"), 200).body)
	if !strings.Contains(m, `cl_serve_rejected_total{reason="queue_full"} 1`) {
		t.Errorf("metrics do not count the rejection:\n%s", grepLines(m, "cl_serve_rejected"))
	}
	// Restore a working batcher so that Close has one to stop.
	ts.s.b = newBatcher(ts.bb, ts.s.dec.pp.Len(), 4, time.Millisecond, 16, 1, nil)
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestMetrics: /metrics serves the request counts and latencies by route
// and code, the batch sizes, the queue depth and the learned samples.
func TestMetrics(t *testing.T) {
	ts := startServer(t, t.TempDir(), Config{}, newHead(t, "simplecil"))
	w := newWorld(8, 32)
	must(t, ts.postJSON("/v1/learn", learnRequest{Samples: []learnSample{w.sample(0), w.sample(1), w.sample(2)}}), 200)
	imgs := tinyImages(t)
	must(t, ts.do("POST", "/v1/predict", "image/jpeg", imgs[0].data, ""), 200)
	ts.do("POST", "/v1/forget", "application/json", []byte(`{"ids":["nope"]}`), testToken)
	r := must(t, ts.get("/metrics"), 200)
	m := string(r.body)
	for _, want := range []string{
		`cl_serve_requests_total{code="200",route="/v1/learn"} 1`,
		`cl_serve_requests_total{code="200",route="/v1/predict"} 1`,
		`cl_serve_requests_total{code="404",route="/v1/forget"} 1`,
		`cl_serve_request_duration_seconds_count{code="200",route="/v1/predict"} 1`,
		`cl_serve_batch_images_count 1`,
		`cl_serve_batch_images_sum 1`,
		`cl_serve_queue_images 0`,
		`cl_serve_learned_samples 3`,
		`cl_serve_model_version 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	var v map[string]any
	if json.Unmarshal(r.body, &v) == nil {
		t.Error("/metrics should be the Prometheus text format, not JSON")
	}
}
