//go:build linux

package heads

import (
	"syscall"
	"unsafe"
)

// adviseHuge applies madvise(MADV_HUGEPAGE) to the 2 MiB-aligned pages that
// lie wholly inside b; errors (an old kernel, THP disabled) are ignored: the
// advice is only about speed.
func adviseHuge(b []byte) {
	const huge = 2 << 20
	if len(b) == 0 {
		return
	}
	off := int((huge - uintptr(unsafe.Pointer(&b[0]))%huge) % huge)
	if off >= len(b) {
		return
	}
	if n := (len(b) - off) / huge * huge; n > 0 {
		_ = syscall.Madvise(b[off:off+n], syscall.MADV_HUGEPAGE)
	}
}
