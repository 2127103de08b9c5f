package cli

import (
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/term"

	"github.com/cl-dev/cl/heads"
)

// headProgress shows the progress of a head's long steps (RanPAC's
// learning, λ search and solve: heads.SetProgress) on stderr, one
// overwritten line per phase, but only when stderr is a terminal: logs and
// pipes get nothing.
func headProgress(h heads.Head, stderr io.Writer) {
	f, ok := stderr.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return
	}
	heads.SetProgress(h, progressLine(f, h.Method(), time.Now))
}

// progressLine returns a heads.Progress writing "\rMETHOD: PHASE  P %"
// to w at most every 200 ms within a phase, and the phase's last line, with
// its duration, ended by a newline.
func progressLine(w io.Writer, method string, now func() time.Time) heads.Progress {
	var phase string
	var start, last time.Time
	return func(p string, done, total int) {
		t := now()
		if p != phase {
			phase, start, last = p, t, time.Time{}
		}
		if done < total && t.Sub(last) < 200*time.Millisecond {
			return
		}
		last = t
		pct := 100
		if total > 0 {
			pct = 100 * done / total
		}
		if done < total {
			fmt.Fprintf(w, "\r%s: %s %3d %%\x1b[K", method, p, pct)
			return
		}
		fmt.Fprintf(w, "\r%s: %s done (%.1f s)\x1b[K\n", method, p, t.Sub(start).Seconds())
	}
}
