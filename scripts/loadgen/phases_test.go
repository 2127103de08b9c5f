package main

import (
	"fmt"
	"math"
	"testing"
	"time"
)

// TestPhases: phases keeps the server's order, adds "outside" (latency less
// the server's total) split into "net" (wire time less the total) and
// "client" (latency less wire time), and gives each phase's median over all requests and
// its p99 (rank ⌊0.99·n⌋, as quantileMs), and its mean over the requests at
// or above the p99 latency: here 200 requests of latency i+1 ms, the
// slowest 1% being the last two.
func TestPhases(t *testing.T) {
	var reqs []timedRequest
	for i := 199; i >= 0; i-- { // unsorted on purpose
		lat := float64(i + 1)
		r := parseServerTiming(fmt.Sprintf("decode;dur=%.3f, backbone;dur=%.3f, total;dur=%.3f", 0.5, lat/2, lat-0.25))
		r.latency = time.Duration(lat * float64(time.Millisecond))
		r.wire = r.latency - 100*time.Microsecond
		reqs = append(reqs, r)
	}
	got := phases(reqs)
	want := []phase{
		{"decode", 0.5, 0.5, 0.5},
		{"backbone", 50.5, 99.5, 99.75}, // median: the 101st smallest latency /2; p99: the 199th /2; tail: (199+200)/2/2
		{"total", 100.75, 198.75, 199.25},
		{"outside", 0.25, 0.25, 0.25},
		{"net", 0.15, 0.15, 0.15}, // wire less total
		{"client", 0.1, 0.1, 0.1}, // latency less wire
	}
	if len(got) != len(want) {
		t.Fatalf("phases %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i].Name != want[i].Name || math.Abs(got[i].MedianMs-want[i].MedianMs) > 1e-9 || math.Abs(got[i].P99Ms-want[i].P99Ms) > 1e-9 || math.Abs(got[i].TailMeanMs-want[i].TailMeanMs) > 1e-9 {
			t.Errorf("phase %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if phases([]timedRequest{parseServerTiming("")}) != nil {
		t.Error("requests without Server-Timing should give no phases")
	}
}
