package kernel

import (
	"fmt"
	"math"
	"math/bits"
)

// conv is how one instruction set runs the int8 products: feature rows are
// quantised to [−qmax, qmax] and stored as q + offset (unsigned bytes); the
// tile multiplies rows rows at a time (single rows for the remainder)
// against up to maxPanels panels of 16 classes (one AVX-512 register, two
// ymm or four arm64 registers of int32 sums).
type conv struct {
	mode            int
	rows, maxPanels int
	qmax            float32
	offset          uint8
	signed          bool // row bytes are signed q (offset 0: arm64 SDOT)
}

const (
	modeGo = iota
	modeVNNI
	modeAVX2
	modeAVXVNNI
	modeSDOT
)

var (
	// convVNNI: AVX-512 VNNI (VPDPBUSD), 3 rows × 7 panels.
	convVNNI = conv{mode: modeVNNI, rows: 3, maxPanels: 7, qmax: 127, offset: 128}
	// convAVX2: AVX2 VPMADDUBSW+VPMADDWD, 2 rows × 3 panels; row bytes stay
	// ≤ 127 so that pairs of products cannot saturate int16.
	convAVX2 = conv{mode: modeAVX2, rows: 2, maxPanels: 3, qmax: 63, offset: 64}
	// convAVXVNNI: AVX-VNNI (VEX VPDPBUSD on ymm; Intel since Alder
	// Lake), the AVX2 tile shapes with full 8-bit rows.
	convAVXVNNI = conv{mode: modeAVXVNNI, rows: 2, maxPanels: 3, qmax: 127, offset: 128}
	// convSDOT: arm64 SDOT (Armv8.2 dot product, signed × signed), 2 rows ×
	// 3 panels; rows stored as signed q.
	convSDOT = conv{mode: modeSDOT, rows: 2, maxPanels: 3, qmax: 127, offset: 0, signed: true}
	// convGo: portable Go with VNNI's layout.
	convGo = conv{mode: modeGo, rows: 3, maxPanels: 7, qmax: 127, offset: 128}
	// convOverride, when set (tests), replaces the machine's choice.
	convOverride *conv
)

// path is one way of running the int8 products in assembly: its name, its
// conv, the flag saying this machine runs it, and what the machine lacks
// when it does not.
type path struct {
	name string
	cv   conv
	on   *bool
	need string
}

// paths lists the assembly paths, fastest first.
var paths = []path{
	{"vnni", convVNNI, &useVNNI, "AVX-512 VNNI"},
	{"avxvnni", convAVXVNNI, &useAVXVNNI, "AVX-VNNI"},
	{"avx2", convAVX2, &useAVX2i8, "AVX2+FMA"},
	{"sdot", convSDOT, &useSDOT, "the Armv8.2 dot product (SDOT)"},
}

// currentConv is the fastest conv this machine runs (portable Go where no
// assembly runs).
func currentConv() conv {
	if convOverride != nil {
		return *convOverride
	}
	for _, p := range paths {
		if *p.on {
			return p.cv
		}
	}
	return convGo
}

// MaxInt8Dim is the largest D the int8 products take: d·255·127 must fit in
// int32.
const MaxInt8Dim = 65536

// rowBlock is the number of feature rows quantised and multiplied at a time;
// stepBlock the number of 4-dimension steps per pass over a tile, so that
// the classes' block (stepBlock·64 bytes per panel, 28 KB for 7 panels)
// stays in L1.
const (
	rowBlock  = 192
	stepBlock = 64
)

// Int8Classes is a class matrix W [C, D] quantised for the int8 kernel:
// W[c] ≈ Scale[c]·q_c with q_c ∈ [−127, 127]^D, q_c = round(W[c]/Scale[c]),
// Scale[c] = max_l |W[c,l]| / 127. Feature rows are quantised to
// [−127, 127] with AVX-512 VNNI and AVX-VNNI, and to [−63, 63] with AVX2.
type Int8Classes struct {
	C, D int
	// Scale [C]: the scale of each class row; Norm [C]: ‖W[c]‖; ResidNorm
	// [C]: ‖W[c] − Scale[c]·q_c‖ (both computed in float64, relative
	// error below 1e-13).
	Scale, Norm, ResidNorm []float64

	cv          conv
	steps, dpad int
	// Classes are in panels of 16 (the last padded with zero classes), and
	// panels in groups of up to maxPanels; group g holds panels
	// [first[g], first[g+1]) stored [steps][panels][16][4] from data[off[g]].
	first, off []int
	data       []int8
	lda        int     // panels·16: the row stride of the int32 sums
	negCorr    []int32 // [lda]: −offset·Σ_l q_c[l] (xu = q + offset)
}

// QuantizeClasses quantises w, row-major float64 [c, d]. It returns nil when
// the int8 path cannot bound its error safely: d > MaxInt8Dim, or a class row
// that is not finite or whose largest magnitude is outside [1e-150, 1e150]
// (rows of zeros are fine).
func QuantizeClasses(w []float64, c, d int) *Int8Classes {
	if d < 1 || d > MaxInt8Dim || c < 1 {
		return nil
	}
	dpad := (d + 31) / 32 * 32
	panels := (c + 15) / 16
	p := &Int8Classes{
		C: c, D: d, Scale: make([]float64, c), Norm: make([]float64, c), ResidNorm: make([]float64, c),
		cv: currentConv(), steps: dpad / 4, dpad: dpad, lda: panels * 16,
	}
	for f := 0; f < panels; f += p.cv.maxPanels {
		p.first = append(p.first, f)
		p.off = append(p.off, f*p.steps*64)
	}
	p.first = append(p.first, panels)
	p.data = make([]int8, panels*p.steps*64)
	p.negCorr = make([]int32, p.lda)
	for j := 0; j < c; j++ {
		row := w[j*d : (j+1)*d]
		var m, ss float64
		for _, v := range row {
			m = max(m, math.Abs(v))
			ss += v * v
		}
		if math.IsNaN(m) || m > 1e150 || (m != 0 && m < 1e-150) {
			return nil
		}
		p.Norm[j] = math.Sqrt(ss)
		if m == 0 {
			continue
		}
		s := m / 127
		p.Scale[j] = s
		g := j / 16 / p.cv.maxPanels
		np, panel, lane := p.first[g+1]-p.first[g], j/16-p.first[g], j%16
		var sum int32
		var rs float64
		for l, v := range row {
			q := math.RoundToEven(v / s)
			q = max(-127, min(127, q))
			r := v - s*q
			rs += r * r
			sum += int32(q)
			p.data[p.off[g]+((l/4)*np+panel)*64+lane*4+l%4] = int8(q)
		}
		p.ResidNorm[j] = math.Sqrt(rs)
		p.negCorr[j] = -int32(p.cv.offset) * sum
	}
	return p
}

// RowQuant describes one quantised feature row x ≈ Scale·q (q ∈
// [−qmax, qmax]^D: qmax = 127, or 63 on the AVX2 path).
type RowQuant struct {
	// OK is false when the row was not quantised (a value that is not
	// finite, max|x| outside [1e-15, 1e15], or Σx² overflowing float32);
	// its products are then meaningless and the caller must score it
	// another way.
	OK bool
	// Scale is the float32 scale max|x|/qmax, as float64.
	Scale float64
	// SumSq is Σx² summed in float32 lanes; ResidSq is ‖x − Scale·q‖²,
	// each residual rounded once to float32 and summed in float32 lanes.
	// Both have relative error below (D+8)·2⁻²³, plus float32 underflow
	// (at most 2⁻¹⁴⁸ per term).
	SumSq, ResidSq float64
}

// Scratch is reusable working memory for Int8Classes.Dot; one per goroutine.
type Scratch struct {
	xu  []uint8   // [rowBlock][dpad]: q + offset
	acc []int32   // [rowBlock][lda]
	pad []float32 // [dpad]: a row copied when D is not a multiple of 32
}

// NewScratch returns scratch sized for p.
func (p *Int8Classes) NewScratch() *Scratch {
	return &Scratch{
		xu:  make([]uint8, rowBlock*p.dpad),
		acc: make([]int32, rowBlock*p.lda),
		pad: make([]float32, p.dpad),
	}
}

// Stride is the row stride of Dot's output that lets Dot accumulate in
// place: C rounded up to 16.
func (p *Int8Classes) Stride() int { return p.lda }

// Dot quantises the n rows of x [n, D] and writes, for each row i and class
// c < C, dst[i·ldd + c] = Σ_l q(x_i)[l]·q_c[l] (exact integers), and stats[i].
// sc must come from p.NewScratch. With ldd = Stride() and len(dst) ≥ n·ldd
// the sums are accumulated in dst itself (no copy); the entries past each
// row's C are then overwritten with junk.
func (p *Int8Classes) Dot(dst []int32, ldd int, stats []RowQuant, x []float32, n int, sc *Scratch) {
	d, lda := p.D, p.lda
	if len(x) < n*d || len(stats) < n || (n > 0 && len(dst) < (n-1)*ldd+p.C) {
		panic("kernel: short slice")
	}
	inPlace := ldd == lda && len(dst) >= n*ldd
	for r0 := 0; r0 < n; r0 += rowBlock {
		nb := min(rowBlock, n-r0)
		for i := 0; i < nb; i++ {
			stats[r0+i] = p.quantizeRow(x[(r0+i)*d:(r0+i+1)*d], sc.xu[i*p.dpad:(i+1)*p.dpad], sc.pad)
		}
		acc := sc.acc[:nb*lda]
		if inPlace {
			acc = dst[r0*lda : (r0+nb)*lda]
		}
		for i := 0; i < nb; i++ {
			copy(acc[i*lda:(i+1)*lda], p.negCorr)
		}
		for g := 0; g+1 < len(p.first); g++ {
			np := p.first[g+1] - p.first[g]
			for s0 := 0; s0 < p.steps; s0 += stepBlock {
				st := min(stepBlock, p.steps-s0)
				w := p.data[p.off[g]+s0*np*64:]
				// Whole tiles of cv.rows rows, then single rows.
				for t := 0; t < nb; {
					tr := p.cv.rows
					if nb-t < tr {
						tr = 1
					}
					dotU8(p.cv, tr, np, st, sc.xu[t*p.dpad+4*s0:], p.dpad, w, acc[t*lda+p.first[g]*16:], lda)
					t += tr
				}
			}
		}
		if !inPlace {
			for i := 0; i < nb; i++ {
				copy(dst[(r0+i)*ldd:(r0+i)*ldd+p.C], acc[i*lda:])
			}
		}
	}
}

func fill(b []uint8, v uint8) {
	for i := range b {
		b[i] = v
	}
}

// quantizeRow writes q(x)+offset into xu [dpad] (padding dimensions get
// q = 0) and returns the row's statistics.
func (p *Int8Classes) quantizeRow(x []float32, xu []uint8, pad []float32) RowQuant {
	if len(x)%32 != 0 {
		copy(pad, x)
		clear(pad[len(x):])
		x = pad
	}
	m, ss := absMaxSumSq(p.cv, x)
	if !(m >= 1e-15 && m <= 1e15) || !(ss <= math.MaxFloat32) {
		fill(xu, p.cv.offset)
		return RowQuant{}
	}
	s, inv := m/p.cv.qmax, p.cv.qmax/m
	rs := quantRow(p.cv, x, inv, s, xu)
	return RowQuant{OK: true, Scale: float64(s), SumSq: float64(ss), ResidSq: float64(rs)}
}

// absMaxSumSqGo returns max_l |x[l]| and Σ x[l]² (summed in float32: the
// assembly's lanes and order differ; the sum is only used within its
// error bound). A NaN makes ss NaN.
func absMaxSumSqGo(x []float32) (m, ss float32) {
	for _, v := range x {
		if a := float32(math.Abs(float64(v))); a > m {
			m = a
		}
		ss = float32(math.FMA(float64(v), float64(v), float64(ss)))
	}
	return m, ss
}

// quantRowGo writes xu[l] = clamp(round-to-even(x[l]·inv), ±qmax) + offset
// and returns Σ (x[l] − s·q[l])² (each residual exact, summed in float32).
func quantRowGo(cv conv, x []float32, inv, s float32, xu []uint8) (r2 float32) {
	for l, v := range x {
		q := float32(math.RoundToEven(float64(v * inv)))
		q = max(-cv.qmax, min(cv.qmax, q))
		xu[l] = uint8(int32(q) + int32(cv.offset))
		r := float32(math.FMA(-float64(s), float64(q), float64(v)))
		r2 = float32(math.FMA(float64(r), float64(r), float64(r2)))
	}
	return r2
}

// dotU8Go adds, for the rows r < rows of xu (stride ldx bytes) and the
// 16·panels classes of one group block w ([steps][panels][16][4]),
// Σ_{s<steps, b<4} xu[r][4s+b]·w[s][j][lane][b] into acc[r·lda + 16j + lane].
// Signed rows (offset 0) read the bytes as int8.
func dotU8Go(signed bool, rows, panels, steps int, xu []uint8, ldx int, w []int8, acc []int32, lda int) {
	nc := panels * 16
	val := func(b uint8) int32 {
		if signed {
			return int32(int8(b))
		}
		return int32(b)
	}
	for r := 0; r < rows; r++ {
		a := acc[r*lda : r*lda+nc]
		xr := xu[r*ldx:]
		for s := 0; s < steps; s++ {
			blk := w[s*nc*4 : (s+1)*nc*4]
			x0, x1, x2, x3 := val(xr[4*s]), val(xr[4*s+1]), val(xr[4*s+2]), val(xr[4*s+3])
			for c := range a {
				q := blk[c*4 : c*4+4]
				a[c] += x0*int32(q[0]) + x1*int32(q[1]) + x2*int32(q[2]) + x3*int32(q[3])
			}
		}
	}
}

// Int8Available reports whether the int8 kernel runs in assembly here
// (amd64 with AVX-512 F, BW, VL and VNNI, with AVX-VNNI, or with AVX2 and
// FMA; arm64 with the dot product extension). Elsewhere it
// is correct but slower than exact float64 scoring, and heads does not use it.
func Int8Available() bool { return currentConv().mode != modeGo }

// Path names the path QuantizeClasses uses now: "vnni", "avxvnni", "avx2",
// "sdot" or "go".
func Path() string {
	cv := currentConv()
	for _, p := range paths {
		if p.cv.mode == cv.mode {
			return p.name
		}
	}
	return "go"
}

// Bounds turns the int8 products of one row into score intervals: for each
// class j, a = base·scale[j]·dots[j] + bias[j], δ = eps + t1·norm[j] +
// t2·resid[j], lo[j] = a − δ and hi[j] = a + δ, with p = (base, t1, t2, eps).
// It returns max_j lo[j]. All slices have the length of lo, a multiple of 8
// (pad with scale 0 and bias −Inf). Roundings differ between the assembly
// and Go by a few ulps; callers keep eps above them.
func Bounds(dots []int32, scale, norm, resid, bias []float64, p *[4]float64, lo, hi []float64) float64 {
	if len(lo)%8 != 0 {
		panic("kernel: Bounds needs a multiple of 8 classes")
	}
	if len(lo) == 0 {
		return math.Inf(-1)
	}
	return bounds(dots, scale, norm, resid, bias, p, lo, hi)
}

func boundsGo(dots []int32, scale, norm, resid, bias []float64, p *[4]float64, lo, hi []float64) float64 {
	best := math.Inf(-1)
	for j := range lo {
		a := p[0]*scale[j]*float64(dots[j]) + bias[j]
		d := p[3] + p[1]*norm[j] + p[2]*resid[j]
		lo[j], hi[j] = a-d, a+d
		best = math.Max(best, lo[j])
	}
	return best
}

// Paths lists the int8 paths this machine runs in assembly, fastest first
// ("vnni", "avxvnni", "avx2" on amd64, "sdot" on arm64), then "go" (portable,
// slow: for tests).
func Paths() []string {
	var ps []string
	for _, p := range paths {
		if *p.on {
			ps = append(ps, p.name)
		}
	}
	return append(ps, "go")
}

// UsePath makes later QuantizeClasses use the named path of Paths (class
// matrices quantised before keep theirs), or the machine's best for "".
// It returns a function that restores the previous choice. It is meant for
// tests and benchmarks and is not safe for concurrent use.
func UsePath(name string) (restore func(), err error) {
	prev := convOverride
	restore = func() { convOverride = prev }
	switch name {
	case "":
		convOverride = nil
		return restore, nil
	case "go":
		cv := convGo
		convOverride = &cv
		return restore, nil
	}
	for _, p := range paths {
		if p.name == name {
			if !*p.on {
				return restore, fmt.Errorf("kernel: this machine has no %s", p.need)
			}
			cv := p.cv
			convOverride = &cv
			return restore, nil
		}
	}
	return restore, fmt.Errorf("kernel: unknown int8 path %q (known: %v)", name, Paths())
}

// AtLeast appends to dst, ascending, every j with hi[j] ≥ t, and returns it.
// len(hi) is a multiple of 8; mask is scratch of len(hi)/8 bytes.
func AtLeast(dst []int, hi []float64, t float64, mask []uint8) []int {
	if len(hi) == 0 {
		return dst
	}
	if len(hi)%8 != 0 {
		panic("kernel: AtLeast needs a multiple of 8 values")
	}
	atLeast(hi, t, mask)
	for i, m := range mask[:len(hi)/8] {
		for m != 0 {
			dst = append(dst, 8*i+bits.TrailingZeros8(m))
			m &= m - 1
		}
	}
	return dst
}

func atLeastGo(hi []float64, t float64, mask []uint8) {
	for i := range len(hi) / 8 {
		var m uint8
		for b, v := range hi[8*i : 8*i+8] {
			if v >= t {
				m |= 1 << b
			}
		}
		mask[i] = m
	}
}
