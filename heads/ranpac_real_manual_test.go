//go:build manual

package heads

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cl-dev/cl/features"
	"github.com/cl-dev/cl/internal/linalg"
)

// TestRanPACRealStages runs RanPAC class-incrementally on real feature
// files, B0 Inc2 in the class order of seed 1993 for 10 classes (numpy
// MT19937: 4 2 7 6 0 3 5 8 9 1), with ridge=pilot and ridge=stable, and logs
// per stage λ, the stable floor, the solver and top-1 on the test rows of
// the classes seen so far. It is the manual check behind docs/HEADS.md's
// collapse numbers:
//
//	CL_RANPAC_REAL=train.safetensors,test.safetensors [CL_RANPAC_M=10000] [CL_RANPAC_SEED=1993] \
//	    go test -tags manual ./heads -run TestRanPACRealStages -v -timeout 2h
//
// (features of Fashion-MNIST through ViT-Ti/16: cl models import the
// ../shared/data checkpoint, cl extract --limit 6000 / 2000).
func TestRanPACRealStages(t *testing.T) {
	files := strings.Split(os.Getenv("CL_RANPAC_REAL"), ",")
	if len(files) != 2 {
		t.Skip("set CL_RANPAC_REAL=train.safetensors,test.safetensors (cl extract of Fashion-MNIST)")
	}
	tr, err := features.Read(files[0])
	if err != nil {
		t.Fatal(err)
	}
	te, err := features.Read(files[1])
	if err != nil {
		t.Fatal(err)
	}
	m := 10000
	if v, err := strconv.Atoi(os.Getenv("CL_RANPAC_M")); err == nil {
		m = v
	}
	seed := uint64(1993)
	if v, err := strconv.ParseUint(os.Getenv("CL_RANPAC_SEED"), 10, 64); err == nil {
		seed = v
	}
	order := []int{4, 2, 7, 6, 0, 3, 5, 8, 9, 1}
	modes := []string{"pilot", "stable"}
	if v := os.Getenv("CL_RANPAC_RIDGE"); v != "" {
		modes = strings.Split(v, ",")
	}
	for _, ridge := range modes {
		cfg := DefaultRanPACConfig()
		cfg.M, cfg.Ridge, cfg.Seed = m, ridge, seed
		h, err := NewRanPAC(cfg)
		if err != nil {
			t.Fatal(err)
		}
		for s := 0; s < 5; s++ {
			start := time.Now()
			x, y := stageRows(tr.X, tr.Labels, tr.D, order[2*s:2*s+2])
			if err := h.Learn(x, y); err != nil {
				t.Fatal(err)
			}
			if err := h.EndStage(); err != nil {
				t.Fatal(err)
			}
			xt, yt := stageRows(te.X, te.Labels, te.D, order[:2*s+2])
			sc, err := h.Scores(xt)
			if err != nil {
				t.Fatal(err)
			}
			cls := h.Classes()
			ok := 0
			for i := range yt {
				if cls[argmaxRow(sc[i*len(cls):(i+1)*len(cls)])] == yt[i] {
					ok++
				}
			}
			t.Logf("M=%d seed=%d %s ridge=%s stage %d (%d rows): λ=%g floor=%.3g solver=%s top-1 %.1f %% (%d test rows) %.0f s",
				m, seed, linalg.Backend(), ridge, s+1, len(y), h.Lambda(), h.RidgeFloor(), h.Solver(), 100*float64(ok)/float64(len(yt)), len(yt), time.Since(start).Seconds())
		}
	}
}
