//go:build manual

package heads

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/cl-dev/cl/internal/npy"
)

// TestRanPACWriteGoldenInputs writes what make_goldens.py needs from Go: the
// projection W.npy and the split orders perms.json. It runs only when
// RANPAC_GOLDEN_DIR is set (make_goldens.py sets it).
func TestRanPACWriteGoldenInputs(t *testing.T) {
	dir := os.Getenv("RANPAC_GOLDEN_DIR")
	if dir == "" {
		t.Skip("RANPAC_GOLDEN_DIR not set; run heads/testdata/ranpac/make_goldens.py to regenerate the goldens")
	}
	b, err := os.ReadFile(filepath.Join(dir, "meta.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m ranpacMeta
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if err := npy.WriteFloat32(filepath.Join(dir, "W.npy"), RanPACProjection(m.Seed, m.D, m.M), []int{m.D, m.M}); err != nil {
		t.Fatal(err)
	}
	var perms [][]int
	for s, cls := range m.Stages {
		n := 0
		for _, l := range m.YTrain {
			if slices.Contains(cls, l) {
				n++
			}
		}
		perms = append(perms, RanPACSplitOrder(m.Seed, s, n, true))
	}
	pj, _ := json.Marshal(perms)
	if err := os.WriteFile(filepath.Join(dir, "perms.json"), pj, 0o644); err != nil {
		t.Fatal(err)
	}
}
