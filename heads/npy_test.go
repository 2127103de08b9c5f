package heads

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// readNpy reads a little-endian .npy file (version 1 or 2, C order) of dtype
// <f4, <f8 or <i8 into float64 values and its shape. Test helper only.
func readNpy(t *testing.T, path string) ([]float64, []int) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("golden %s: %v (regenerate with: cd heads/testdata && /usr/bin/python3 make_goldens.py)", path, err)
	}
	v, shape, err := parseNpy(data)
	if err != nil {
		t.Fatalf("golden %s: %v", path, err)
	}
	return v, shape
}

var (
	npyDescr = regexp.MustCompile(`'descr':\s*'([^']+)'`)
	npyOrder = regexp.MustCompile(`'fortran_order':\s*(True|False)`)
	npyShape = regexp.MustCompile(`'shape':\s*\(([^)]*)\)`)
)

func parseNpy(data []byte) ([]float64, []int, error) {
	if len(data) < 10 || string(data[:6]) != "\x93NUMPY" {
		return nil, nil, fmt.Errorf("not a .npy file")
	}
	var hlen, off int
	switch data[6] {
	case 1:
		hlen, off = int(binary.LittleEndian.Uint16(data[8:10])), 10
	case 2, 3:
		hlen, off = int(binary.LittleEndian.Uint32(data[8:12])), 12
	default:
		return nil, nil, fmt.Errorf("unsupported .npy version %d", data[6])
	}
	hdr := string(data[off : off+hlen])
	body := data[off+hlen:]
	d, o, s := npyDescr.FindStringSubmatch(hdr), npyOrder.FindStringSubmatch(hdr), npyShape.FindStringSubmatch(hdr)
	if d == nil || o == nil || s == nil || o[1] != "False" {
		return nil, nil, fmt.Errorf("unsupported header %q", hdr)
	}
	var shape []int
	n := 1
	for _, f := range strings.Split(s[1], ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		k, err := strconv.Atoi(f)
		if err != nil {
			return nil, nil, err
		}
		shape = append(shape, k)
		n *= k
	}
	size := map[string]int{"<f4": 4, "<f8": 8, "<i8": 8}[d[1]]
	if size == 0 || len(body) != n*size {
		return nil, nil, fmt.Errorf("dtype %s with %d bytes for shape %v", d[1], len(body), shape)
	}
	out := make([]float64, n)
	for i := range out {
		switch d[1] {
		case "<f4":
			out[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(body[4*i:])))
		case "<f8":
			out[i] = math.Float64frombits(binary.LittleEndian.Uint64(body[8*i:]))
		case "<i8":
			out[i] = float64(int64(binary.LittleEndian.Uint64(body[8*i:])))
		}
	}
	return out, shape, nil
}
