package heads

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// RanPAC option defaults (see DefaultRanPACConfig).
const (
	RanPACDefaultM    = 10000
	RanPACDefaultSeed = 0
)

// RanPACConfig is RanPAC's configuration. Start from DefaultRanPACConfig:
// the zero value is not the default (M = 0 is ridge on the raw features).
type RanPACConfig struct {
	// M is the projection width (0: ridge on the raw features, no ReLU).
	M int `opt:"M" help:"projection width; 0 = ridge on the raw features"`
	// Lambda fixes the ridge λ; 0 ("auto") chooses it per stage.
	Lambda Lambda `opt:"lambda" help:"auto (chosen per stage) or a fixed λ > 0"`
	// Scoring is "cosine" (PILOT) or "linear" (the original RanPAC code).
	Scoring string `opt:"scoring" help:"cosine (PILOT) or linear (original RanPAC)"`
	// Seed seeds the projection and the stage's fit/validation split.
	Seed uint64 `opt:"seed" help:"projection and split seed"`
	// Split is "shuffled" (seeded random fit/validation split) or
	// "ordered" (the first 80 % of the stage in learning order fit).
	Split string `opt:"split" help:"shuffled or ordered fit/validation split of the stage"`
	// Search is "fast" (one tridiagonal reduction for the whole λ grid) or
	// "solve" (one LU solve of size P per λ, as PILOT).
	Search string `opt:"search" help:"fast (one reduction for the λ grid) or solve (17 LU solves, as PILOT)"`
	// ClassGram keeps one P×P Gram per class (C·P²·8 bytes) so that
	// RemoveClass is exact.
	ClassGram bool `opt:"class_gram" help:"keep one P×P Gram per class so that RemoveClass is exact"`
	// Ridge is "stable" (λ never below what G's float64 solve resolves:
	// docs/HEADS.md) or "pilot" (PILOT's exact grid and primal solve).
	Ridge string `opt:"ridge" help:"stable (λ bounded by G's scale) or pilot (PILOT's grid and solve, for reproduction)"`
}

// DefaultRanPACConfig is M = 10000, lambda = auto, scoring = cosine,
// seed = 0, split = shuffled, search = fast, class_gram = false,
// ridge = stable.
func DefaultRanPACConfig() RanPACConfig {
	return RanPACConfig{M: RanPACDefaultM, Scoring: "cosine", Seed: RanPACDefaultSeed, Split: "shuffled", Search: "fast", Ridge: "stable"}
}

// Method implements Config.
func (c *RanPACConfig) Method() string { return "ranpac" }

// Validate implements Config. It also refuses a width M whose Gram matrix
// and fitting work (ranpacPeakBytes) exceed the machine's memory.
func (c *RanPACConfig) Validate() error {
	if c.M < 0 {
		return fmt.Errorf("ranpac: option M=%d: want a width ≥ 0", c.M)
	}
	if err := checkMemory(fmt.Sprintf("its Gram matrix alone is %s (8·M² bytes) and fitting", byteSize(gramBytes(c.M))),
		ranpacPeakBytes(c.M)); err != nil {
		return fmt.Errorf("ranpac: option M=%d: %v; choose a smaller M (M=10000 needs about %s)", c.M, err, byteSize(ranpacPeakBytes(10000)))
	}
	if c.M > ranpacMaxWidth {
		return fmt.Errorf("ranpac: option M=%d: its Gram matrix alone is %s; the largest width cl accepts is %d",
			c.M, byteSize(gramBytes(c.M)), ranpacMaxWidth)
	}
	if err := c.Lambda.check(); err != nil {
		return fmt.Errorf("ranpac: option lambda=%v: %v", c.Lambda, err)
	}
	if err := oneOf("ranpac", "scoring", c.Scoring, "cosine", "linear"); err != nil {
		return err
	}
	if err := oneOf("ranpac", "split", c.Split, "shuffled", "ordered"); err != nil {
		return err
	}
	if err := oneOf("ranpac", "search", c.Search, "fast", "solve"); err != nil {
		return err
	}
	return oneOf("ranpac", "ridge", c.Ridge, "stable", "pilot")
}

// Lambda is RanPAC's λ option: 0 is "auto" (chosen per stage), otherwise a
// fixed λ > 0. Its text form is "auto" or a number.
type Lambda float64

// MarshalText writes "auto" for 0, the shortest decimal otherwise.
func (l Lambda) MarshalText() ([]byte, error) {
	if l == 0 {
		return []byte("auto"), nil
	}
	return []byte(strconv.FormatFloat(float64(l), 'g', -1, 64)), nil
}

// UnmarshalText reads "auto" (or "") as 0, otherwise a finite number > 0.
func (l *Lambda) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	if s == "auto" || s == "" {
		*l = 0
		return nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return errors.New(`want "auto" or a finite number > 0`)
	}
	if !(v > 0) || math.IsInf(v, 0) {
		return errors.New(`want "auto" or a finite number > 0`)
	}
	*l = Lambda(v)
	return nil
}

func (l Lambda) check() error {
	if v := float64(l); v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return errors.New(`want "auto" or a finite number > 0`)
	}
	return nil
}

func (l Lambda) String() string { b, _ := l.MarshalText(); return string(b) }

// ranpacMaxWidth is the largest width P accepted (a Gram matrix of 137 GB).
const ranpacMaxWidth = 1 << 17

// ranpacPeakBytes estimates the peak memory of fitting a RanPAC head of
// width p: G (8·p² bytes) and, while the λ search and the solve run, up to
// about as much again (docs/PERFORMANCE.md measured 1.6–1.7 × G at
// M = 10000, more at small M where the stage rows dominate).
func ranpacPeakBytes(p int) float64 { return 2 * gramBytes(p) }
