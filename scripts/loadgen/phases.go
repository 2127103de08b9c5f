package main

import (
	"sort"
	"strconv"
	"strings"
	"time"
)

// timedRequest is one answered request: its latency at the client and the
// phases of the server's Server-Timing header (name → milliseconds).
type timedRequest struct {
	latency time.Duration
	wire    time.Duration // request written → first reply byte (0: unknown)
	phases  map[string]float64
	order   []string
}

// phase is where requests' time went in one part of serving: the median
// and the 99th percentile of the phase over all requests, and its mean over
// the slowest 1% of requests (those at or above the p99 latency), in
// milliseconds. After the server's phases: "outside", the client's latency
// less the server's total, split into "net" (from the request written to
// the reply's first byte, less the server's total: net/http before and after
// the handler, loopback and the kernel's scheduling of the server) and
// "client" (the rest: the HTTP client writing the request and reading the
// reply, and the kernel's scheduling of the client).
type phase struct {
	Name       string  `json:"name"`
	MedianMs   float64 `json:"median_ms"`
	P99Ms      float64 `json:"p99_ms"`
	TailMeanMs float64 `json:"slowest_1pct_mean_ms"`
}

// parseServerTiming parses name;dur=MS entries ("" or malformed entries are
// skipped).
func parseServerTiming(h string) timedRequest {
	r := timedRequest{phases: map[string]float64{}}
	for _, e := range strings.Split(h, ",") {
		name, dur, ok := strings.Cut(strings.TrimSpace(e), ";dur=")
		v, err := strconv.ParseFloat(dur, 64)
		if !ok || err != nil {
			continue
		}
		r.phases[name] = v
		r.order = append(r.order, name)
	}
	return r
}

// phases summarises reqs' Server-Timing phases (nil when the server sent
// none), in the server's order, then "outside".
func phases(reqs []timedRequest) []phase {
	var names []string
	for _, r := range reqs {
		if len(r.order) > len(names) {
			names = r.order
		}
	}
	if len(names) == 0 {
		return nil
	}
	sort.Slice(reqs, func(i, j int) bool { return reqs[i].latency < reqs[j].latency })
	tail := reqs[min(len(reqs)-1, int(0.99*float64(len(reqs)))):]
	ms := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }
	value := func(r timedRequest, n string) float64 {
		switch n {
		case "outside":
			return ms(r.latency) - r.phases["total"]
		case "net":
			return ms(r.wire) - r.phases["total"]
		case "client":
			return ms(r.latency - r.wire)
		}
		return r.phases[n]
	}
	extra := []string{"outside"}
	for _, r := range reqs {
		if r.wire > 0 {
			extra = append(extra, "net", "client")
			break
		}
	}
	var out []phase
	for _, n := range append(append([]string(nil), names...), extra...) {
		v := make([]float64, len(reqs))
		for i, r := range reqs {
			v[i] = value(r, n)
		}
		sort.Float64s(v)
		sum := 0.0
		for _, r := range tail {
			sum += value(r, n)
		}
		out = append(out, phase{Name: n, MedianMs: v[len(v)/2], P99Ms: v[min(len(v)-1, int(0.99*float64(len(v))))],
			TailMeanMs: sum / float64(len(tail))})
	}
	return out
}
