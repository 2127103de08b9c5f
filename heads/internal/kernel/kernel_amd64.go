//go:build !purego

package kernel

import "golang.org/x/sys/cpu"

// useAsm selects the AVX2+FMA assembly tiles.
var useAsm = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// dot6x16 computes out[r*16+j] = Σ_{l<d} x[r*ldx+l]·w[l*16+j] for r < 6,
// j < 16 (d ≥ 1; ldx in elements).
//
//go:noescape
func dot6x16(d int, x *float32, ldx int, w *float32, out *float32)

// dot1x16 computes out[j] = Σ_{l<d} x[l]·w[l*16+j] for j < 16 (d ≥ 1).
//
//go:noescape
func dot1x16(d int, x *float32, w *float32, out *float32)
