// Package kernel holds the inner loops of prototype-head scoring.
//
// Dot is the exact float64 dot product that heads' Scores and the exact
// re-scoring of TopK both use: one fixed operation order (32 lanes of fused
// multiply-adds, then a fixed pairwise tree), so its result is the same bit for
// bit with or without the assembly and on every platform.
//
// Int8Classes is the approximate side: class rows and feature rows quantised
// to int8 with one scale per row, multiplied exactly in int32 (assembly for
// AVX-512 VNNI, AVX-VNNI and AVX2 on amd64, SDOT on arm64; see Paths). heads
// uses those products only to shortlist classes,
// under a rigorous bound on the quantisation error, and re-scores the
// shortlist with Dot.
package kernel

//go:generate go run asm_gen.go

import "math"

// Lanes is the number of partial sums Dot keeps: element l goes to lane
// l mod Lanes.
const Lanes = 32

// Dot returns Σ_l x[l]·w[l] (len(w) ≥ len(x)) computed as: acc[t] =
// fma(x[l], w[l], acc[t]) for l = t, t+32, t+64, … in order, then acc[t] +=
// acc[t+16] (t < 16), += acc[t+8] (t < 8), += acc[t+4], += acc[t+2], and
// acc[0] + acc[1]. The result depends only on x and w, not on the machine.
func Dot(x, w []float64) float64 {
	n := len(x)
	w = w[:n]
	var acc [Lanes]float64
	nb := n / Lanes
	if nb > 0 {
		if useFMA {
			dotAccAsm(&acc, &x[0], &w[0], nb)
		} else {
			dotAccGo(&acc, x[:nb*Lanes], w[:nb*Lanes])
		}
	}
	for l := nb * Lanes; l < n; l++ {
		t := l - nb*Lanes
		acc[t] = math.FMA(x[l], w[l], acc[t])
	}
	return reduce(&acc)
}

// dotAccGo is the portable accumulation of Dot over whole blocks of Lanes.
func dotAccGo(acc *[Lanes]float64, x, w []float64) {
	for b := 0; b+Lanes <= len(x); b += Lanes {
		xb, wb := x[b:b+Lanes:b+Lanes], w[b:b+Lanes:b+Lanes]
		for t := range acc {
			acc[t] = math.FMA(xb[t], wb[t], acc[t])
		}
	}
}

// reduce sums the lanes of Dot in its fixed tree order.
func reduce(acc *[Lanes]float64) float64 {
	for h := Lanes / 2; h >= 2; h /= 2 {
		for t := 0; t < h; t++ {
			acc[t] += acc[t+h]
		}
	}
	return acc[0] + acc[1]
}
