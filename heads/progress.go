package heads

// Progress receives coarse progress of a long head computation: phase says
// what runs (e.g. "λ search: kernels", "solve (Cholesky of G + λI)"), done
// of total its units (rows, blocks, columns); done == total ends the phase.
// Calls come from the goroutine that runs the head's method, in order, a few
// hundred per phase at most; they must return quickly.
type Progress func(phase string, done, total int)

// progressReporter is implemented by heads whose steps take long (RanPAC).
type progressReporter interface{ setProgress(Progress) }

// SetProgress attaches p to h (nil detaches it) and reports whether h
// reports progress at all (only RanPAC does; the other heads' steps are
// short).
func SetProgress(h Head, p Progress) bool {
	r, ok := h.(progressReporter)
	if ok {
		r.setProgress(p)
	}
	return ok
}

// setProgress implements progressReporter.
func (h *RanPAC) setProgress(p Progress) { h.progress = p }

// phase returns a done/total callback for one named phase, or nil when no
// Progress is attached.
func (h *RanPAC) phase(name string) func(done, total int) {
	if h.progress == nil {
		return nil
	}
	p := h.progress
	return func(done, total int) { p(name, done, total) }
}
