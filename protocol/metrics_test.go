package protocol

import (
	"encoding/json"
	"math"
	"testing"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// Hand-computed example: 3 stages with 10, 20, 10 test rows.
//
//	correct after stage:   b=0  b=1  b=2
//	task 0 (10 rows)        9    8    5
//	task 1 (20 rows)        -   18   16
//	task 2 (10 rows)        -    -    7
//
// a = [[90 80 50] [- 90 80] [- - 70]]
// A_0 = 9/10 = 90; A_1 = 26/30 = 86.666…; A_2 = 28/40 = 70
// Ā = (90 + 86.666… + 70)/3 = 82.222…; rounded curve 90, 86.67, 70 → 82.2233…
// F = ((90−50) + (90−80))/2 = 25
// old/new: b=1 old 80 new 90; b=2 old 21/30 = 70 new 70.
func TestComputeMetricsHand(t *testing.T) {
	correct := [][]int{{9, 8, 5}, {0, 18, 16}, {0, 0, 7}}
	m := ComputeMetrics(correct, []int{10, 20, 10})
	wantCurve := []float64{90, 260.0 / 3, 70}
	for b, w := range wantCurve {
		if !near(m.Curve[b], w) {
			t.Errorf("curve[%d] = %v, want %v", b, m.Curve[b], w)
		}
	}
	if m.CurveRounded[1] != 86.67 {
		t.Errorf("rounded %v", m.CurveRounded)
	}
	if !near(m.AvgAccuracy, (90+260.0/3+70)/3) || !near(m.AvgAccuracyPILOT, (90+86.67+70)/3) {
		t.Errorf("avg %v %v", m.AvgAccuracy, m.AvgAccuracyPILOT)
	}
	if m.LastAccuracy != 70 || !near(m.Forgetting, 25) {
		t.Errorf("last %v forgetting %v", m.LastAccuracy, m.Forgetting)
	}
	if m.OldNew[0].Old != nil || m.OldNew[0].New != 90 {
		t.Errorf("old/new 0: %+v", m.OldNew[0])
	}
	if *m.OldNew[1].Old != 80 || m.OldNew[1].New != 90 || !near(*m.OldNew[2].Old, 70) || m.OldNew[2].New != 70 {
		t.Errorf("old/new: %v %v %v", *m.OldNew[1].Old, m.OldNew[1].New, *m.OldNew[2].Old)
	}
	if !math.IsNaN(m.AccuracyMatrix[2][0]) || m.AccuracyMatrix[1][2] != 80 {
		t.Errorf("matrix %v", m.AccuracyMatrix)
	}
	b, err := json.Marshal(m.AccuracyMatrix)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != "[[90,80,50],[null,90,80],[null,null,70]]" {
		t.Errorf("matrix JSON %s", b)
	}
	var back Matrix
	if err := json.Unmarshal(b, &back); err != nil || !math.IsNaN(back[1][0]) || back[2][2] != 70 {
		t.Errorf("round trip %v %v", back, err)
	}
}

// Forgetting's max includes the last stage, and a task that improves has
// zero forgetting (PILOT trainer.py).
func TestForgettingImproving(t *testing.T) {
	m := ComputeMetrics([][]int{{5, 9}, {0, 4}}, []int{10, 10})
	if m.Forgetting != 0 {
		t.Errorf("forgetting %v", m.Forgetting)
	}
	m = ComputeMetrics([][]int{{5}}, []int{10})
	if m.Forgetting != 0 || m.AvgAccuracy != 50 || m.LastAccuracy != 50 {
		t.Errorf("single stage %+v", m)
	}
}

func TestRoundPILOT(t *testing.T) {
	// Expected values printed by /usr/bin/python3 -c "import numpy as np; print(np.around([86.666666, 12.345, 0.125, 0.375, 33.333333333], 2))".
	for x, want := range map[float64]float64{86.666666: 86.67, 12.345: 12.34, 0.125: 0.12, 0.375: 0.38, 100: 100, 33.333333333: 33.33} {
		if got := RoundPILOT(x); got != want {
			t.Errorf("RoundPILOT(%v) = %v, want %v", x, got, want)
		}
	}
}
