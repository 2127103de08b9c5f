package learners

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// popts reads a learner's key=value options over its defaults.
type popts struct {
	method string
	got    map[string]string
	def    map[string]string
	err    error
}

func newPopts(method string, got, def map[string]string) (*popts, error) {
	if err := CheckOptions(method, got, def); err != nil {
		return nil, err
	}
	return &popts{method: method, got: got, def: def}, nil
}

func (o *popts) str(k string) string {
	if v, ok := o.got[k]; ok {
		return v
	}
	return o.def[k]
}

func (o *popts) fail(k, want string) {
	if o.err == nil {
		o.err = fmt.Errorf("%s: option %s=%q must be %s", o.method, k, o.str(k), want)
	}
}

// integer reads k as an integer in [lo, hi].
func (o *popts) integer(k string, lo, hi int) int {
	v, err := strconv.Atoi(strings.TrimSpace(o.str(k)))
	if err != nil || v < lo || v > hi {
		o.fail(k, fmt.Sprintf("an integer in [%d, %d]", lo, hi))
		return lo
	}
	return v
}

// number reads k as a finite number ≥ lo.
func (o *popts) number(k string, lo float64) float64 {
	v, err := strconv.ParseFloat(strings.TrimSpace(o.str(k)), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v < lo {
		o.fail(k, fmt.Sprintf("a number ≥ %v", lo))
		return lo
	}
	return v
}

// choice reads k as one of the allowed values.
func (o *popts) choice(k string, allowed ...string) string {
	v := strings.TrimSpace(o.str(k))
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	o.fail(k, "one of "+strings.Join(allowed, ", "))
	return allowed[0]
}

// boolean reads k as true/false.
func (o *popts) boolean(k string) bool {
	v, err := strconv.ParseBool(strings.TrimSpace(o.str(k)))
	if err != nil {
		o.fail(k, "true or false")
	}
	return v
}

// maxCount bounds the counts options take (batch sizes, epochs): 2^20.
const maxCount = 1 << 20

// size reads k as a positive count in [1, maxCount] (a batch size).
func (o *popts) size(k string) int { return o.integer(k, 1, maxCount) }

// count reads k as a count in [0, maxCount] (epochs).
func (o *popts) count(k string) int { return o.integer(k, 0, maxCount) }

// ints reads k as a comma-separated list of block indices ≥ 0 (empty
// entries skipped).
func (o *popts) ints(k string) []int {
	var out []int
	for _, f := range strings.Split(o.str(k), ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		v, err := strconv.Atoi(f)
		if err != nil || v < 0 {
			o.fail(k, "a comma-separated list of block indices")
			return nil
		}
		out = append(out, v)
	}
	return out
}
