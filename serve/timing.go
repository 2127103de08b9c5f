package serve

import (
	"fmt"
	"net/http"
	"strings"
	"time"
)

// predictTiming is where one predict request's time went, for its
// Server-Timing response header (docs/SERVE.md, "Where a lone request's
// time goes"): from the handler's start, reading the body, decoding and
// preprocessing the images, waiting for the batch worker (queue), the
// backbone call that ran them, the handler getting its rows back (wake), and
// scoring them with the head.
type predictTiming struct {
	start, read, decoded time.Time
	job                  jobTimes  // zero for feature rows
	back, scored         time.Time // the handler had the features; scored them
}

// header sets the Server-Timing header of w: each phase's duration in
// milliseconds (dur, as the W3C Server Timing format has it), then total
// (the handler until the reply is encoded). Phases that did not happen
// (feature rows: parse instead of decode, queue, backbone and wake) are left
// out.
func (t *predictTiming) header(w http.ResponseWriter) {
	var b strings.Builder
	add := func(name string, from, to time.Time) {
		if from.IsZero() || to.IsZero() {
			return
		}
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s;dur=%.3f", name, float64(to.Sub(from).Nanoseconds())/1e6)
	}
	add("read", t.start, t.read)
	if !t.job.queued.IsZero() {
		add("decode", t.read, t.job.queued)
		add("queue", t.job.queued, t.job.start)
		add("backbone", t.job.start, t.job.end)
		add("wake", t.job.end, t.back)
	} else {
		add("parse", t.read, t.back)
	}
	add("head", t.back, t.scored)
	add("total", t.start, time.Now())
	w.Header().Set("Server-Timing", b.String())
}
