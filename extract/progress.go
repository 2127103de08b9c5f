package extract

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// progress draws a one-line progress bar ("\r"-rewritten) with images/s and
// ETA on a terminal. A nil writer draws nothing.
type progress struct {
	w     io.Writer
	total int
	done  atomic.Int64
	start time.Time
	stop  chan struct{}
	wg    sync.WaitGroup
	now   func() time.Time
}

func newProgress(w io.Writer, total int, every time.Duration) *progress {
	p := &progress{w: w, total: total, start: time.Now(), stop: make(chan struct{}), now: time.Now}
	if w == nil {
		return p
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				fmt.Fprint(p.w, "\r"+p.line())
			}
		}
	}()
	return p
}

// add counts n more images handled (extracted or skipped).
func (p *progress) add(n int) { p.done.Add(int64(n)) }

// line renders the bar: "[#####.....] 1234/5000  24%  210.3 img/s  ETA 17s".
func (p *progress) line() string {
	done := int(p.done.Load())
	el := p.now().Sub(p.start).Seconds()
	const width = 24
	frac := 0.0
	if p.total > 0 {
		frac = float64(done) / float64(p.total)
	}
	bar := make([]byte, width)
	for i := range bar {
		bar[i] = '.'
		if float64(i) < frac*width {
			bar[i] = '#'
		}
	}
	rate, eta := 0.0, "?"
	if el > 0 && done > 0 {
		rate = float64(done) / el
		eta = fmtDuration(time.Duration(float64(p.total-done) / rate * float64(time.Second)))
	}
	return fmt.Sprintf("[%s] %d/%d %3.0f%%  %.1f img/s  ETA %s   ", bar, done, p.total, 100*frac, rate, eta)
}

// finish stops the bar, leaving the final line and a newline.
func (p *progress) finish() {
	if p.w == nil {
		return
	}
	select {
	case <-p.stop:
		return
	default:
	}
	close(p.stop)
	p.wg.Wait()
	fmt.Fprint(p.w, "\r"+p.line()+"\n")
}

func fmtDuration(d time.Duration) string {
	d = d.Round(time.Second)
	h, m, s := int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60
	switch {
	case h > 0:
		return fmt.Sprintf("%dh%02dm", h, m)
	case m > 0:
		return fmt.Sprintf("%dm%02ds", m, s)
	}
	return fmt.Sprintf("%ds", s)
}
