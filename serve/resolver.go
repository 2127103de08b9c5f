package serve

import (
	"sync"
	"time"
)

// resolver schedules the re-solve of heads that solve per stage (RanPAC,
// LDA, FeCAM): a change starts the clock; the head is re-solved delay after
// the last change, but no later than maxDelay after the first change since
// the last solve. Learning in bursts thus costs one solve per burst, and a
// steady stream of changes still becomes visible within maxDelay. Until
// then predictions use the last solved head, and every reply carries its
// model version (the journal record it reflects).
type resolver struct {
	s               *Server
	delay, maxDelay time.Duration
	poke            chan struct{}
	stop            chan struct{}
	done            chan struct{}
	once            sync.Once
}

func newResolver(s *Server, delay, maxDelay time.Duration) *resolver {
	r := &resolver{s: s, delay: delay, maxDelay: maxDelay, poke: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{})}
	go r.loop()
	return r
}

// changed tells the resolver that the head changed.
func (r *resolver) changed() {
	select {
	case r.poke <- struct{}{}:
	default:
	}
}

func (r *resolver) loop() {
	defer close(r.done)
	var first, last time.Time
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-r.stop:
			timer.Stop()
			return
		case <-r.poke:
			now := time.Now()
			if first.IsZero() {
				first = now
			}
			last = now
			due := min(last.Add(r.delay).Sub(now), first.Add(r.maxDelay).Sub(now))
			timer.Reset(max(due, 0))
		case <-timer.C:
			first, last = time.Time{}, time.Time{}
			r.s.resolveNow()
		}
	}
}

func (r *resolver) close() {
	r.once.Do(func() { close(r.stop) })
	<-r.done
}

// resolveNow re-solves the head and publishes it for predictions.
func (s *Server) resolveNow() {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	start := time.Now()
	if err := s.m.solve(); err != nil {
		s.log.Warn("re-solve failed; predictions keep the previous head until the next change", "err", err)
		return
	}
	s.log.Debug("re-solved", "version", s.m.version, "seconds", time.Since(start).Seconds())
}
