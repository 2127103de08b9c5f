//go:build purego || !amd64

package kernel

const useAsm = false

func dot6x16(d int, x *float32, ldx int, w *float32, out *float32) { panic("unreachable") }

func dot1x16(d int, x *float32, w *float32, out *float32) { panic("unreachable") }
