package heads

import "unsafe"

// hugePageMin is the size from which largeSlice asks for transparent huge
// pages: numpy asks the same for every array of 4 MiB or more.
const hugePageMin = 4 << 20

// largeFloats is largeSlice for float64: G, the projection, the stage's H,
// the λ search's Gram or kernels.
func largeFloats(n int) []float64 { return largeSlice[float64](n) }

// largeSlice returns n zeroed values for one of RanPAC's large buffers. From
// 4 MiB on it advises the kernel to back the memory with transparent huge
// pages (Linux with transparent_hugepage=madvise, the usual default; a no-op
// elsewhere), as numpy does for its arrays: a fresh 4 KiB page costs a page
// fault on first touch, and on this project's virtual machines touching a
// fresh 320 MB buffer took 1.16 s in 4 KiB pages against 0.67 s in 2 MiB
// pages (docs/PERFORMANCE.md, "RanPAC"). Only the memory policy changes; the
// values and every result are the same bits.
func largeSlice[T float32 | float64](n int) []T {
	s := make([]T, n)
	if b := int(unsafe.Sizeof(T(0))) * n; b >= hugePageMin {
		adviseHuge(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), b))
	}
	return s
}
