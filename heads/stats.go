package heads

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"

	"github.com/cl-dev/cl/internal/safetensors"
)

// ErrNeedSamples is returned by RemoveClass of heads whose statistics mix
// classes (LDA's shared scatter): the class's exact contribution can only be
// removed by Unlearn with its samples.
var ErrNeedSamples = errors.New("removing this class exactly needs its samples")

// classStat is the sufficient statistics of one class: the number of samples,
// the float64 sum of their (transformed) feature rows [D] and, when kept, the
// upper triangle of the sum of outer products Σ x xᵀ [D, D] (row-major,
// diagonal included). The strict lower triangle of outer is not statistics:
// FeCAM keeps the strict lower triangle of the class's solved precision
// there (one D × D array per class instead of two); it is zero until then,
// and tensors and merge never read it.
type classStat struct {
	n     int64
	sum   []float64
	outer []float64
}

// classStats is the per-class statistics shared by the prototype heads
// (SimpleCIL, APER, NCM), FeCAM (per-class outer products) and LDA (one
// outer-product sum over all samples). Learning adds, Unlearn subtracts,
// Merge adds two sets, so the result does not depend on order or grouping up
// to float64 rounding.
type classStats struct {
	d        int
	perClass bool // keep classStat.outer
	shared   bool // keep scatter
	cls      map[int]*classStat
	// scatter is the upper triangle of Σ x xᵀ over all samples [D, D].
	scatter []float64
	total   int64
	// dirty lists classes whose statistics changed since markClean.
	dirty map[int]bool
	// version counts mutations.
	version uint64
}

func newClassStats(perClass, shared bool) *classStats {
	return &classStats{perClass: perClass, shared: shared, cls: map[int]*classStat{}, dirty: map[int]bool{}}
}

// labels lists the classes with at least one sample, ascending.
func (s *classStats) labels() []int {
	out := make([]int, 0, len(s.cls))
	for l := range s.cls {
		out = append(out, l)
	}
	sort.Ints(out)
	return out
}

// checkBatch validates features x [n, D] and labels y [n] against the head
// dimension dim (0: not yet known, inferred from the batch). It returns D.
func checkBatch(method string, x []float32, y []int, dim int) (int, error) {
	n := len(y)
	if n == 0 {
		if len(x) != 0 {
			return 0, fmt.Errorf("%s: %d feature values but no labels", method, len(x))
		}
		return dim, nil
	}
	d := dim
	if d == 0 {
		if len(x)%n != 0 || len(x) == 0 {
			return 0, fmt.Errorf("%s: %d feature values do not split into %d rows", method, len(x), n)
		}
		d = len(x) / n
	}
	if len(x) != n*d {
		if len(x)%n == 0 {
			return 0, fmt.Errorf("%s: features have dimension %d, the head has %d (features of another model?)", method, len(x)/n, d)
		}
		return 0, fmt.Errorf("%s: %d feature values for %d labels of dimension %d", method, len(x), n, d)
	}
	for i, l := range y {
		if l < 0 {
			return 0, fmt.Errorf("%s: row %d has negative label %d", method, i, l)
		}
	}
	if err := checkFinite(method, x, d); err != nil {
		return 0, err
	}
	return d, nil
}

// checkRows validates x [n, dim] for scoring and returns n.
func checkRows(method string, x []float32, dim int) (int, error) {
	if dim == 0 {
		return 0, fmt.Errorf("%s: the head is empty: learn some classes before scoring", method)
	}
	if len(x)%dim != 0 {
		return 0, fmt.Errorf("%s: %d feature values are not rows of the head's dimension %d (features of another model?)", method, len(x), dim)
	}
	if err := checkFinite(method, x, dim); err != nil {
		return 0, err
	}
	return len(x) / dim, nil
}

func checkFinite(method string, x []float32, d int) error { return checkFiniteFrom(method, x, d, 0) }

// checkFiniteFrom checks rows x [n, d] that are rows row0… of the caller's
// input, naming the first non-finite value by its row and column.
func checkFiniteFrom(method string, x []float32, d, row0 int) error {
	if allFinite(x) {
		return nil
	}
	for i, v := range x {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("%s: row %d column %d is %v (features must be finite)", method, row0+i/d, i%d, v)
		}
	}
	return nil
}

// allFinite reports whether no value of x is NaN or ±Inf. A float32 is not
// finite exactly when its 8 exponent bits are all ones, and then adding one
// to the exponent field carries into bit 31; the loop ORs that sum over all
// values (four independent accumulators, no branch), about 10 times faster
// than testing each value with math.IsNaN and math.IsInf.
func allFinite(x []float32) bool {
	const exp, one = 0x7f800000, 0x00800000
	var a0, a1, a2, a3 uint32
	i := 0
	for ; i+4 <= len(x); i += 4 {
		v := x[i : i+4 : i+4]
		a0 |= math.Float32bits(v[0])&exp + one
		a1 |= math.Float32bits(v[1])&exp + one
		a2 |= math.Float32bits(v[2])&exp + one
		a3 |= math.Float32bits(v[3])&exp + one
	}
	for ; i < len(x); i++ {
		a0 |= math.Float32bits(x[i])&exp + one
	}
	return (a0|a1|a2|a3)&0x80000000 == 0
}

// scoreBlock is the number of rows FeCAM converts and multiplies at a time.
const scoreBlock = 256

// toFloat64 converts rows x [n, d] to float64, L2-normalising each row
// (x / max(‖x‖, 1e-12), as torch's F.normalize) when normalize is set.
func toFloat64(dst []float64, x []float32, d int, normalize bool) []float64 {
	if cap(dst) < len(x) {
		dst = make([]float64, len(x))
	}
	dst = dst[:len(x)]
	for i, v := range x {
		dst[i] = float64(v)
	}
	if normalize {
		for r := 0; r < len(x)/d; r++ {
			normalizeRow(dst[r*d : (r+1)*d])
		}
	}
	return dst
}

// normalizeRow scales v to unit L2 norm with torch's eps 1e-12.
func normalizeRow(v []float64) {
	var ss float64
	for _, a := range v {
		ss += a * a
	}
	nrm := math.Sqrt(ss)
	if nrm < 1e-12 {
		nrm = 1e-12
	}
	for i := range v {
		v[i] /= nrm
	}
}

// checkRemovable reports whether the samples of labels y can be subtracted:
// every class known, no more samples than were learned.
func (s *classStats) checkRemovable(method string, y []int) error {
	need := map[int]int64{}
	for _, l := range y {
		need[l]++
	}
	for l, k := range need {
		c, ok := s.cls[l]
		if !ok {
			return fmt.Errorf("%s: cannot unlearn class %d: the head has no such class", method, l)
		}
		if k > c.n {
			return fmt.Errorf("%s: cannot unlearn %d samples of class %d: only %d were learned", method, k, l, c.n)
		}
	}
	return nil
}

// add adds (sign = +1) or subtracts (sign = −1) the float32 rows x [n, d]
// with labels y, n ≤ len(buf)/d: each row is converted into buf (and
// L2-normalised when normalize is set) and added to its class's sum while it
// is in cache, then all n rows update the shared scatter (when kept) by one
// rank-n update. Statistics with per-class outer products take their rows
// one class at a time instead (addClass). Subtraction must have been checked
// with checkRemovable.
func (s *classStats) add(x []float32, y []int, d int, sign float64, normalize bool, buf []float64) {
	if len(y) == 0 {
		return
	}
	s.d = d
	s.ensureScatter(d)
	rows := buf[:len(y)*d]
	for i, l := range y {
		c := s.class(l, d)
		// Serial on purpose: bands of columns on both cores (the BLAS's
		// threads idle meanwhile) took twice as long at 60000 × 1280 (0.18
		// against 0.09 s; docs/PERFORMANCE.md).
		row := rows[i*d : (i+1)*d : (i+1)*d]
		for j, v := range x[i*d : (i+1)*d] {
			row[j] = float64(v)
		}
		if normalize {
			normalizeRow(row)
		}
		sum := c.sum[:d]
		for j, v := range row {
			sum[j] += sign * v
		}
		c.n += int64(sign)
		s.total += int64(sign)
		s.dirty[l] = true
	}
	if s.shared {
		a := blas64.General{Rows: len(y), Cols: d, Stride: d, Data: rows}
		blas64.Syrk(blas.Trans, sign, a, 1, blas64.Symmetric{Uplo: blas.Upper, N: d, Stride: d, Data: s.scatter})
	}
	for l := range s.dirty {
		if c, ok := s.cls[l]; ok && c.n == 0 {
			delete(s.cls, l)
		}
	}
	s.version++
}

// addClass is add for k rows [k, d] that all belong to class l: the sums in
// row order as add does, and one rank-k update of the class's outer-product
// triangle (and of the shared scatter when kept).
func (s *classStats) addClass(l int, rows []float64, k, d int, sign float64) {
	if k == 0 {
		return
	}
	s.d = d
	s.ensureScatter(d)
	c := s.class(l, d)
	sum := c.sum[:d]
	for i := 0; i < k; i++ {
		for j, v := range rows[i*d : (i+1)*d] {
			sum[j] += sign * v
		}
	}
	c.n += int64(sign) * int64(k)
	s.total += int64(sign) * int64(k)
	s.dirty[l] = true
	a := blas64.General{Rows: k, Cols: d, Stride: d, Data: rows[:k*d]}
	if s.shared {
		blas64.Syrk(blas.Trans, sign, a, 1, blas64.Symmetric{Uplo: blas.Upper, N: d, Stride: d, Data: s.scatter})
	}
	if s.perClass {
		blas64.Syrk(blas.Trans, sign, a, 1, blas64.Symmetric{Uplo: blas.Upper, N: d, Stride: d, Data: c.outer})
	}
	if c.n == 0 {
		delete(s.cls, l)
	}
	s.version++
}

// class returns class l's statistics, created empty (sum [d], and outer
// [d, d] when kept) if the class has none yet.
func (s *classStats) class(l, d int) *classStat {
	c, ok := s.cls[l]
	if !ok {
		c = &classStat{sum: make([]float64, d)}
		if s.perClass {
			c.outer = make([]float64, d*d)
		}
		s.cls[l] = c
	}
	return c
}

// ensureScatter allocates the shared scatter [d, d] when it is kept and not
// there yet.
func (s *classStats) ensureScatter(d int) {
	if s.shared && s.scatter == nil {
		s.scatter = make([]float64, d*d)
	}
}

// remove drops every statistic of class l. With a shared scatter the class's
// share of it cannot be separated, so remove refuses (see ErrNeedSamples).
func (s *classStats) remove(method string, l int) error {
	c, ok := s.cls[l]
	if !ok {
		return fmt.Errorf("%s: cannot remove class %d: the head has no such class (classes %v)", method, l, s.labels())
	}
	if s.shared {
		return fmt.Errorf("%s: class %d: %w (its samples' outer products are mixed into the shared covariance); call Unlearn with the class's features instead", method, l, ErrNeedSamples)
	}
	s.total -= c.n
	delete(s.cls, l)
	s.dirty[l] = true
	s.version++
	return nil
}

// merge adds the statistics of o (same layout) to s.
func (s *classStats) merge(method string, o *classStats) error {
	if o.d == 0 || len(o.cls) == 0 {
		return nil
	}
	if s.d != 0 && s.d != o.d {
		return fmt.Errorf("%s: cannot merge heads of dimensions %d and %d", method, s.d, o.d)
	}
	if s.perClass != o.perClass || s.shared != o.shared {
		return fmt.Errorf("%s: cannot merge heads with different statistics", method)
	}
	d := o.d
	s.d = d
	if s.shared {
		s.ensureScatter(d)
		for i, v := range o.scatter {
			s.scatter[i] += v
		}
	}
	for l, oc := range o.cls {
		c := s.class(l, d)
		c.n += oc.n
		for i, v := range oc.sum {
			c.sum[i] += v
		}
		if oc.outer != nil {
			// The upper triangle only: the strict lower one may hold a
			// solved precision (classStat).
			for i := 0; i < d; i++ {
				dst, src := c.outer[i*d+i:(i+1)*d], oc.outer[i*d+i:(i+1)*d]
				for j, v := range src {
					dst[j] += v
				}
			}
		}
		s.dirty[l] = true
	}
	s.total += o.total
	s.version++
	return nil
}

// mean returns the mean of class l [D].
func (s *classStats) mean(l int) []float64 {
	c := s.cls[l]
	m := make([]float64, s.d)
	for i, v := range c.sum {
		m[i] = v / float64(c.n)
	}
	return m
}

// covariance returns the unbiased covariance of class l as a full symmetric
// row-major [D, D] matrix: (Σ x xᵀ − n μ μᵀ) / (n − 1). It needs n ≥ 2.
func (s *classStats) covariance(method string, l int) ([]float64, error) {
	c := s.cls[l]
	if c.n < 2 {
		return nil, fmt.Errorf("%s: class %d has %d sample(s); a covariance needs at least 2", method, l, c.n)
	}
	d := s.d
	mu := s.mean(l)
	out := make([]float64, d*d)
	n := float64(c.n)
	for i := 0; i < d; i++ {
		for j := i; j < d; j++ {
			v := (c.outer[i*d+j] - n*mu[i]*mu[j]) / (n - 1)
			out[i*d+j] = v
			out[j*d+i] = v
		}
	}
	return out, nil
}

// pooledCovariance returns the within-class covariance pooled over all
// classes, divided by the total sample count N, as the upper triangle of a
// [D, D] array (the strict lower triangle is zero; LDA's solve reads only
// the upper one): (Σ_all x xᵀ − Σ_c n_c μ_c μ_cᵀ) / N.
func (s *classStats) pooledCovariance() []float64 {
	d := s.d
	out := make([]float64, d*d)
	copy(out, s.scatter)
	for _, l := range s.labels() {
		c := s.cls[l]
		// n μ μᵀ = sum sumᵀ / n
		blas64.Syr(-1/float64(c.n), blas64.Vector{N: d, Inc: 1, Data: c.sum},
			blas64.Symmetric{Uplo: blas.Upper, N: d, Stride: d, Data: out})
	}
	n := float64(s.total)
	for i := 0; i < d; i++ {
		row := out[i*d+i : (i+1)*d]
		for j := range row {
			row[j] /= n
		}
	}
	return out
}

// tensors encodes the statistics: "labels" I64 [C], "counts" I64 [C],
// "sums" F64 [C, D], and when kept "outer" F64 [C, D, D] (upper triangles)
// and "scatter" F64 [D, D] (upper triangle), "total" I64 [1].
func (s *classStats) tensors() map[string]safetensors.Tensor {
	ls := s.labels()
	c, d := len(ls), s.d
	labels := make([]int64, c)
	counts := make([]int64, c)
	sums := make([]float64, 0, c*d)
	var outer []float64
	if s.perClass {
		outer = make([]float64, c*d*d)
	}
	for i, l := range ls {
		cs := s.cls[l]
		labels[i], counts[i] = int64(l), cs.n
		sums = append(sums, cs.sum...)
		if s.perClass {
			// The upper triangle; the lower stays zero as the format says
			// (classStat's lower triangle may hold a solved precision).
			o := outer[i*d*d : (i+1)*d*d]
			for r := 0; r < d; r++ {
				copy(o[r*d+r:(r+1)*d], cs.outer[r*d+r:(r+1)*d])
			}
		}
	}
	t := map[string]safetensors.Tensor{
		"labels": safetensors.FromInt64s([]int64{int64(c)}, labels),
		"counts": safetensors.FromInt64s([]int64{int64(c)}, counts),
		"sums":   safetensors.FromFloat64s([]int64{int64(c), int64(d)}, sums),
		"dim":    safetensors.FromInt64s([]int64{1}, []int64{int64(d)}),
	}
	if s.perClass {
		if outer == nil {
			outer = []float64{}
		}
		t["outer"] = safetensors.FromFloat64s([]int64{int64(c), int64(d), int64(d)}, outer)
	}
	if s.shared {
		sc := s.scatter
		if sc == nil {
			sc = make([]float64, d*d)
		}
		t["scatter"] = safetensors.FromFloat64s([]int64{int64(d), int64(d)}, sc)
	}
	return t
}

// relabel renumbers the classes: label l becomes to[l] (to covers every
// class and is injective; checked by Relabel). Dirty marks follow their
// classes; marks of classes that are gone are dropped.
func (s *classStats) relabel(to map[int]int) {
	cls := make(map[int]*classStat, len(s.cls))
	for l, cs := range s.cls {
		cls[to[l]] = cs
	}
	dirty := map[int]bool{}
	for l := range s.dirty {
		if t, ok := to[l]; ok {
			dirty[t] = true
		}
	}
	s.cls, s.dirty = cls, dirty
	s.version++
}

// maxDim bounds the feature dimension a head file may declare.
const maxDim = 1 << 20

// loadTensors rebuilds statistics from tensors(), validating every shape,
// count and value; tampered input is an error, never a panic.
func (s *classStats) loadTensors(t map[string]safetensors.Tensor) error {
	get := func(name string, dt safetensors.DType, shape ...int64) (safetensors.Tensor, error) {
		x, ok := t[name]
		if !ok {
			return x, fmt.Errorf("missing tensor %q", name)
		}
		if x.DType != dt || !slices.Equal(x.Shape, shape) {
			return x, fmt.Errorf("tensor %q is %s %v, want %s %v", name, x.DType, x.Shape, dt, shape)
		}
		return x, nil
	}
	dimT, err := get("dim", safetensors.I64, 1)
	if err != nil {
		return err
	}
	d64 := dimT.Int64s()[0]
	if d64 < 0 || d64 > maxDim {
		return fmt.Errorf("invalid dimension %d", d64)
	}
	lt, ok := t["labels"]
	if !ok || lt.DType != safetensors.I64 || len(lt.Shape) != 1 {
		return fmt.Errorf("missing or malformed tensor \"labels\" (want I64 [C])")
	}
	c := lt.Shape[0]
	if c > 0 && d64 == 0 {
		return fmt.Errorf("%d classes with dimension 0", c)
	}
	if d64 > 0 && c*d64 > 1<<34 {
		return fmt.Errorf("implausible size: %d classes of dimension %d", c, d64)
	}
	countsT, err := get("counts", safetensors.I64, c)
	if err != nil {
		return err
	}
	sumsT, err := get("sums", safetensors.F64, c, d64)
	if err != nil {
		return err
	}
	d := int(d64)
	var outer, scatter []float64
	if s.perClass {
		ot, err := get("outer", safetensors.F64, c, d64, d64)
		if err != nil {
			return err
		}
		outer = ot.Float64s()
	}
	if s.shared {
		st, err := get("scatter", safetensors.F64, d64, d64)
		if err != nil {
			return err
		}
		scatter = st.Float64s()
	}
	labels, counts, sums := lt.Int64s(), countsT.Int64s(), sumsT.Float64s()
	for _, nv := range []struct {
		name string
		v    []float64
	}{{"sums", sums}, {"outer", outer}, {"scatter", scatter}} {
		for i, v := range nv.v {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return fmt.Errorf("tensor %q holds %v at flat index %d: the head file is corrupt; refit it from its features", nv.name, v, i)
			}
		}
	}
	s.d = d
	s.cls = map[int]*classStat{}
	s.total = 0
	for i, l := range labels {
		if l < 0 || l > math.MaxInt32 {
			return fmt.Errorf("invalid class label %d", l)
		}
		if _, dup := s.cls[int(l)]; dup {
			return fmt.Errorf("class label %d appears twice", l)
		}
		if counts[i] <= 0 || counts[i] > 1<<48 {
			return fmt.Errorf("class %d has invalid sample count %d", l, counts[i])
		}
		cs := &classStat{n: counts[i], sum: sums[i*d : (i+1)*d : (i+1)*d]}
		if s.perClass {
			cs.outer = outer[i*d*d : (i+1)*d*d : (i+1)*d*d]
		}
		s.cls[int(l)] = cs
		s.dirty[int(l)] = true
		s.total += counts[i]
	}
	if s.shared {
		s.scatter = scatter
		if d == 0 {
			s.scatter = nil
		}
	}
	s.version++
	return nil
}

func sameParams(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func copyParams(p map[string]string) map[string]string {
	out := make(map[string]string, len(p))
	for k, v := range p {
		out[k] = v
	}
	return out
}

// statHead is the part every statistics head shares: validation, the
// learn/unlearn/remove/merge plumbing and the canonical options.
type statHead struct {
	method string
	params map[string]string
	st     *classStats
	// normalize L2-normalises each row before it enters the statistics.
	normalize bool
}

// baser gives Merge access to another head's statistics.
type baser interface{ base() *statHead }

func (h *statHead) base() *statHead { return h }

// Method implements Head.
func (h *statHead) Method() string { return h.method }

// Dim implements Head.
func (h *statHead) Dim() int { return h.st.d }

// Classes implements Head.
func (h *statHead) Classes() []int { return h.st.labels() }

func (h *statHead) learn(x []float32, y []int, sign float64) error {
	d, err := checkBatch(h.method, x, y, h.st.d)
	if err != nil {
		return err
	}
	if len(y) == 0 {
		return nil
	}
	if sign < 0 {
		if err := h.st.checkRemovable(h.method, y); err != nil {
			return err
		}
	}
	if h.st.perClass {
		h.learnByClass(x, y, d, sign)
		return nil
	}
	// Convert in chunks so a large batch never needs a float64 copy.
	const chunk = 1024
	buf := make([]float64, min(len(y), chunk)*d)
	for i := 0; i < len(y); i += chunk {
		j := min(i+chunk, len(y))
		h.st.add(x[i*d:j*d], y[i:j], d, sign, h.normalize, buf)
	}
	return nil
}

// learnByClass is learn for per-class outer products (FeCAM): the rows of
// x [n, d] are taken class by class (rows in their order within a class) and
// converted in chunks of up to classChunk rows of one class, so that each
// class's triangle gets one rank-k update per chunk (k up to classChunk)
// rather than one of rank ≈ chunk/C per 1024-row chunk of the batch: at
// C = 100 classes the updates were rank ≈ 10, each rewriting a D × D
// triangle. Each class's sum adds its rows in the same order as before; the
// outer products are grouped differently (their last bits change).
func (h *statHead) learnByClass(x []float32, y []int, d int, sign float64) {
	const classChunk = 1024
	count := map[int]int{}
	for _, l := range y {
		count[l]++
	}
	ls := make([]int, 0, len(count))
	most := 0
	for l, k := range count {
		ls = append(ls, l)
		most = max(most, k)
	}
	sort.Ints(ls)
	start := make(map[int]int, len(ls))
	off := 0
	for _, l := range ls {
		start[l] = off
		off += count[l]
	}
	idx := make([]int, len(y))
	for i, l := range y {
		idx[start[l]] = i
		start[l]++
	}
	buf := make([]float64, min(most, classChunk)*d)
	off = 0
	for _, l := range ls {
		rows := idx[off : off+count[l]]
		off += count[l]
		for a := 0; a < len(rows); a += classChunk {
			part := rows[a:min(a+classChunk, len(rows))]
			for t, i := range part {
				toFloat64(buf[t*d:(t+1)*d], x[i*d:(i+1)*d], d, h.normalize)
			}
			h.st.addClass(l, buf[:len(part)*d], len(part), d, sign)
		}
	}
}

func (h *statHead) merge(other Head) error {
	b, ok := other.(baser)
	if !ok || other.Method() != h.method {
		return fmt.Errorf("%s: cannot merge a %s head", h.method, other.Method())
	}
	o := b.base()
	if !sameParams(h.params, o.params) {
		return fmt.Errorf("%s: cannot merge heads with different options (%v vs %v)", h.method, h.params, o.params)
	}
	if o == h {
		return fmt.Errorf("%s: cannot merge a head with itself", h.method)
	}
	return h.st.merge(h.method, o.st)
}

func errEmpty(method string) error {
	return fmt.Errorf("%s: the head has no classes: learn some before scoring", method)
}

// loadAndSolve fills st from a head file's tensors and, when it holds any
// class, solves h (EndStage) so that it scores at once.
func loadAndSolve(h Head, st *classStats, t map[string]safetensors.Tensor) error {
	if err := st.loadTensors(t); err != nil {
		return err
	}
	if len(st.cls) > 0 {
		return h.EndStage()
	}
	return nil
}
