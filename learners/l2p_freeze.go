package learners

import "sort"

// Freezing the pool rows a stage used (l2p.freeze=used): after every
// stage, the pool rows (prompt and key) that any of its training images
// selected get no update in later stages: their gradients are zeroed, and
// Adam, re-created every stage with no weight decay, then leaves them
// bit-identical. The images of earlier classes that keep selecting those
// rows keep the features their head columns and stored statistics were
// fitted on; later stages train the rows still free (and the head).

// Freeze modes (option freeze).
const (
	FreezeNone = "none"
	FreezeUsed = "used"
)

// l2pState is L2P's JSON record: the prompt learners' record and the
// frozen pool rows (absent when none, so files without freezing read as
// before).
type l2pState struct {
	promptState[L2POptions]
	Frozen []int `json:"frozen,omitempty"`
}

// noteUsed adds the pool rows of idx to the rows the current stage used.
func (l *L2P) noteUsed(idx [][]int) {
	if l.opt.Freeze != FreezeUsed {
		return
	}
	if l.used == nil {
		l.used = map[int]bool{}
	}
	for _, row := range idx {
		for _, j := range row {
			l.used[j] = true
		}
	}
}

// freezeUsed freezes the rows the stage used, once it has trained.
func (l *L2P) freezeUsed() {
	if l.opt.Freeze != FreezeUsed {
		return
	}
	old := map[int]bool{}
	for _, j := range l.frozen {
		old[j] = true
	}
	for j := range l.used {
		if !old[j] {
			l.frozen = append(l.frozen, j)
		}
	}
	sort.Ints(l.frozen)
	l.used = nil
	l.pe.env.Logf("l2p: pool rows frozen after stage %d: %v of %d", l.stages, l.frozen, l.opt.Pool)
}

// zeroFrozen zeroes the rows of the frozen pool entries in the prompt
// gradient gp [pool,length,W] and the key gradient gk [pool,W].
func (l *L2P) zeroFrozen(gp, gk []float32) {
	W, blk := l.pe.w.Width, l.opt.Length*l.pe.w.Width
	for _, j := range l.frozen {
		clear(gp[j*blk : (j+1)*blk])
		clear(gk[j*W : (j+1)*W])
	}
}
