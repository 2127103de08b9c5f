//go:build !purego

#include "textflag.h"

// AVX2+FMA tiles over a packed panel w [d][16] (see Packed).
// Each step l broadcasts one feature x[r][l] per row and multiplies it with
// the 16 class values w[l][0:16] (two YMM registers), accumulating with FMA.

// func dot6x16(d int, x *float32, ldx int, w *float32, out *float32)
// Rows r = 0..5 of x (stride ldx floats); 12 accumulators Y0..Y11
// (row r in Y(2r), Y(2r+1)); Y12, Y13 hold w[l]; Y14, Y15 the broadcasts.
TEXT ·dot6x16(SB), NOSPLIT, $0-40
	MOVQ d+0(FP), CX
	MOVQ x+8(FP), SI
	MOVQ ldx+16(FP), BX
	SHLQ $2, BX               // row stride in bytes
	MOVQ w+24(FP), DI
	MOVQ out+32(FP), DX
	LEAQ (SI)(BX*2), R8
	ADDQ BX, R8               // R8 = row 3
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11

loop6:
	VMOVUPS (DI), Y12
	VMOVUPS 32(DI), Y13
	VBROADCASTSS (SI), Y14
	VFMADD231PS Y12, Y14, Y0
	VFMADD231PS Y13, Y14, Y1
	VBROADCASTSS (SI)(BX*1), Y15
	VFMADD231PS Y12, Y15, Y2
	VFMADD231PS Y13, Y15, Y3
	VBROADCASTSS (SI)(BX*2), Y14
	VFMADD231PS Y12, Y14, Y4
	VFMADD231PS Y13, Y14, Y5
	VBROADCASTSS (R8), Y15
	VFMADD231PS Y12, Y15, Y6
	VFMADD231PS Y13, Y15, Y7
	VBROADCASTSS (R8)(BX*1), Y14
	VFMADD231PS Y12, Y14, Y8
	VFMADD231PS Y13, Y14, Y9
	VBROADCASTSS (R8)(BX*2), Y15
	VFMADD231PS Y12, Y15, Y10
	VFMADD231PS Y13, Y15, Y11
	ADDQ $4, SI
	ADDQ $4, R8
	ADDQ $64, DI
	DECQ CX
	JNZ  loop6

	VMOVUPS Y0, (DX)
	VMOVUPS Y1, 32(DX)
	VMOVUPS Y2, 64(DX)
	VMOVUPS Y3, 96(DX)
	VMOVUPS Y4, 128(DX)
	VMOVUPS Y5, 160(DX)
	VMOVUPS Y6, 192(DX)
	VMOVUPS Y7, 224(DX)
	VMOVUPS Y8, 256(DX)
	VMOVUPS Y9, 288(DX)
	VMOVUPS Y10, 320(DX)
	VMOVUPS Y11, 352(DX)
	VZEROUPPER
	RET

// func dot1x16(d int, x *float32, w *float32, out *float32)
// One row: steps l, l+1, l+2, l+3 go to separate accumulator pairs
// (Y0:Y1 … Y6:Y7) so that four FMA chains run in parallel; the pairs are
// added at the end.
TEXT ·dot1x16(SB), NOSPLIT, $0-32
	MOVQ d+0(FP), CX
	MOVQ x+8(FP), SI
	MOVQ w+16(FP), DI
	MOVQ out+24(FP), DX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	MOVQ CX, AX
	SHRQ $2, AX               // AX = d / 4 steps of 4
	ANDQ $3, CX               // CX = d % 4
	TESTQ AX, AX
	JZ   tail1

loop1:
	VBROADCASTSS (SI), Y8
	VFMADD231PS (DI), Y8, Y0
	VFMADD231PS 32(DI), Y8, Y1
	VBROADCASTSS 4(SI), Y9
	VFMADD231PS 64(DI), Y9, Y2
	VFMADD231PS 96(DI), Y9, Y3
	VBROADCASTSS 8(SI), Y10
	VFMADD231PS 128(DI), Y10, Y4
	VFMADD231PS 160(DI), Y10, Y5
	VBROADCASTSS 12(SI), Y11
	VFMADD231PS 192(DI), Y11, Y6
	VFMADD231PS 224(DI), Y11, Y7
	ADDQ $16, SI
	ADDQ $256, DI
	DECQ AX
	JNZ  loop1

tail1:
	TESTQ CX, CX
	JZ   done1

loopt:
	VBROADCASTSS (SI), Y8
	VFMADD231PS (DI), Y8, Y0
	VFMADD231PS 32(DI), Y8, Y1
	ADDQ $4, SI
	ADDQ $64, DI
	DECQ CX
	JNZ  loopt

done1:
	VADDPS Y2, Y0, Y0
	VADDPS Y3, Y1, Y1
	VADDPS Y6, Y4, Y4
	VADDPS Y7, Y5, Y5
	VADDPS Y4, Y0, Y0
	VADDPS Y5, Y1, Y1
	VMOVUPS Y0, (DX)
	VMOVUPS Y1, 32(DX)
	VZEROUPPER
	RET
