package serve

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the Prometheus series /metrics serves (one registry per
// server, so tests can run several).
type metrics struct {
	reg       *prometheus.Registry
	requests  *prometheus.CounterVec   // route, code
	latency   *prometheus.HistogramVec // route, code; seconds
	batchSize prometheus.Histogram     // images per backbone call
	batchTime prometheus.Histogram     // seconds per backbone call
	rejected  *prometheus.CounterVec   // reason
}

func newMetrics(queueDepth func() float64, samples func() float64, version func() float64) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cl_serve_requests_total", Help: "HTTP requests by route and status code.",
	}, []string{"route", "code"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "cl_serve_request_duration_seconds", Help: "HTTP request latency by route and status code, in seconds.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
	}, []string{"route", "code"})
	m.batchSize = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "cl_serve_batch_images", Help: "Images per backbone batch.",
		Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128},
	})
	m.batchTime = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "cl_serve_batch_duration_seconds", Help: "Backbone time per batch, in seconds.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
	})
	m.rejected = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cl_serve_rejected_total", Help: "Requests refused for load: queue_full, too_many_requests.",
	}, []string{"reason"})
	m.reg.MustRegister(m.requests, m.latency, m.batchSize, m.batchTime, m.rejected,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "cl_serve_queue_images", Help: "Images waiting for or running on the backbone."}, queueDepth),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "cl_serve_learned_samples", Help: "Samples learned through the server and not forgotten."}, samples),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "cl_serve_model_version", Help: "Journal sequence number the served head reflects."}, version),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

func (m *metrics) batch(images int, d time.Duration) {
	m.batchSize.Observe(float64(images))
	m.batchTime.Observe(d.Seconds())
}

// statusWriter records the status code a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = 200
	}
	return w.ResponseWriter.Write(b)
}

// instrument counts and times requests of one route.
func (m *metrics) instrument(route string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(sw, r)
		if sw.code == 0 {
			sw.code = 200
		}
		code := strconv.Itoa(sw.code)
		m.requests.WithLabelValues(route, code).Inc()
		m.latency.WithLabelValues(route, code).Observe(time.Since(start).Seconds())
	})
}
