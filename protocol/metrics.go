package protocol

import (
	"encoding/json"
	"math"
)

// Matrix is an accuracy matrix a[i][b]: top-1 % on the test rows of stage
// i's classes after stage b, NaN for b < i (not yet learned). It marshals to
// JSON with null for NaN.
type Matrix [][]float64

// MarshalJSON writes NaN entries as null.
func (m Matrix) MarshalJSON() ([]byte, error) {
	out := make([][]*float64, len(m))
	for i, row := range m {
		out[i] = make([]*float64, len(row))
		for b := range row {
			if !math.IsNaN(row[b]) {
				v := row[b]
				out[i][b] = &v
			}
		}
	}
	return json.Marshal(out)
}

// UnmarshalJSON reads null entries as NaN.
func (m *Matrix) UnmarshalJSON(b []byte) error {
	var in [][]*float64
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	*m = make(Matrix, len(in))
	for i, row := range in {
		(*m)[i] = make([]float64, len(row))
		for j, p := range row {
			if p == nil {
				(*m)[i][j] = math.NaN()
			} else {
				(*m)[i][j] = *p
			}
		}
	}
	return nil
}

// OldNew is the accuracy (%) after one stage on the classes of earlier
// stages (Old; nil at the first stage, which has none) and on the stage's
// own new classes (New), as PILOT's "old"/"new" groups.
type OldNew struct {
	Old *float64 `json:"old"`
	New float64  `json:"new"`
}

// Metrics are the numbers docs/METHODS.md §3.4 derives from one method's stage loop.
// All accuracies are top-1 percentages.
type Metrics struct {
	// Curve[b] = A_b, accuracy on the test rows of every class seen up to
	// stage b, unrounded.
	Curve []float64 `json:"curve"`
	// CurveRounded is Curve rounded as PILOT logs it (np.around(·, 2),
	// half to even): the "CNN top1 curve".
	CurveRounded []float64 `json:"curve_rounded"`
	// AvgAccuracy Ā = mean of Curve; AvgAccuracyPILOT = mean of CurveRounded
	// (PILOT's "Average Accuracy (CNN)").
	AvgAccuracy      float64 `json:"avg_accuracy"`
	AvgAccuracyPILOT float64 `json:"avg_accuracy_pilot"`
	// LastAccuracy A_B = Curve[B−1].
	LastAccuracy float64 `json:"last_accuracy"`
	// Forgetting F = mean over i < B−1 of (max_b a[i][b] − a[i][B−1]); 0 when
	// there is a single stage.
	Forgetting float64 `json:"forgetting"`
	// OldNew per stage.
	OldNew []OldNew `json:"old_new"`
	// AccuracyMatrix a[i][b].
	AccuracyMatrix Matrix `json:"accuracy_matrix"`
}

// RoundPILOT rounds a percentage as numpy's np.around(x, decimals=2):
// multiply by 100, round half to even, divide by 100.
func RoundPILOT(x float64) float64 { return math.RoundToEven(x*100) / 100 }

// ComputeMetrics derives the metrics from counts: correct[i][b] is the number
// of test rows of stage i's classes predicted right after stage b (b ≥ i;
// entries b < i are ignored), total[i] the number of test rows of stage i's
// classes (> 0). B = len(total) stages.
func ComputeMetrics(correct [][]int, total []int) Metrics {
	B := len(total)
	m := Metrics{
		Curve:          make([]float64, B),
		CurveRounded:   make([]float64, B),
		OldNew:         make([]OldNew, B),
		AccuracyMatrix: make(Matrix, B),
	}
	for i := range m.AccuracyMatrix {
		m.AccuracyMatrix[i] = make([]float64, B)
		for b := range m.AccuracyMatrix[i] {
			if b < i {
				m.AccuracyMatrix[i][b] = math.NaN()
			} else {
				m.AccuracyMatrix[i][b] = pct(correct[i][b], total[i])
			}
		}
	}
	for b := 0; b < B; b++ {
		oldC, oldT := 0, 0
		for i := 0; i < b; i++ {
			oldC += correct[i][b]
			oldT += total[i]
		}
		m.Curve[b] = pct(oldC+correct[b][b], oldT+total[b])
		m.CurveRounded[b] = RoundPILOT(m.Curve[b])
		m.OldNew[b].New = pct(correct[b][b], total[b])
		if b > 0 {
			v := pct(oldC, oldT)
			m.OldNew[b].Old = &v
		}
		m.AvgAccuracy += m.Curve[b]
		m.AvgAccuracyPILOT += m.CurveRounded[b]
	}
	if B > 0 {
		m.AvgAccuracy /= float64(B)
		m.AvgAccuracyPILOT /= float64(B)
		m.LastAccuracy = m.Curve[B-1]
	}
	if B > 1 {
		for i := 0; i < B-1; i++ {
			best := math.Inf(-1)
			for b := i; b < B; b++ {
				best = math.Max(best, m.AccuracyMatrix[i][b])
			}
			m.Forgetting += best - m.AccuracyMatrix[i][B-1]
		}
		m.Forgetting /= float64(B - 1)
	}
	return m
}

func pct(c, t int) float64 {
	if t == 0 {
		return math.NaN()
	}
	return 100 * float64(c) / float64(t)
}
