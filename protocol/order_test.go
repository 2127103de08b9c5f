package protocol

import (
	"encoding/json"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// Orders printed in docs/METHODS.md §3.1 (from PILOT/APER/EASE logs), seed 1993.
const (
	order100 = "68, 56, 78, 8, 23, 84, 90, 65, 74, 76, 40, 89, 3, 92, 55, 9, 26, 80, 43, 38, 58, 70, 77, 1, 85, 19, 17, 50, 28, 53, 13, 81, 45, 82, 6, 59, 83, 16, 15, 44, 91, 41, 72, 60, 79, 52, 20, 10, 31, 54, 37, 95, 14, 71, 96, 98, 97, 2, 64, 66, 42, 22, 35, 86, 24, 34, 87, 21, 99, 0, 88, 27, 18, 94, 11, 12, 47, 25, 30, 46, 62, 69, 36, 61, 7, 63, 75, 5, 32, 4, 51, 48, 73, 93, 39, 67, 29, 49, 57, 33"
	order200 = "168, 136, 51, 9, 183, 101, 171, 99, 42, 159, 191, 70, 16, 188, 27, 10, 175, 26, 68, 187, 98, 6, 85, 35, 112, 43, 100, 0, 103, 181, 88, 59, 4, 2, 116, 174, 94, 80, 106, 1, 147, 17, 141, 131, 72, 23, 173, 54, 197, 118, 87, 32, 79, 104, 91, 19, 135, 107, 178, 36, 11, 199, 142, 8, 122, 3, 28, 57, 153, 172, 190, 56, 49, 44, 97, 62, 151, 169, 194, 55, 192, 12, 189, 78, 66, 180, 15, 137, 109, 134, 92, 119, 126, 52, 170, 40, 148, 65, 144, 64, 138, 45, 77, 89, 154, 90, 71, 193, 74, 30, 113, 143, 96, 84, 67, 50, 186, 156, 69, 21, 18, 111, 108, 58, 125, 157, 150, 110, 182, 129, 166, 83, 81, 60, 13, 165, 14, 176, 63, 117, 5, 22, 145, 121, 38, 41, 82, 127, 114, 20, 31, 53, 37, 163, 196, 130, 152, 162, 86, 76, 24, 34, 184, 149, 33, 128, 198, 155, 146, 167, 139, 120, 140, 102, 47, 25, 158, 123, 46, 164, 61, 7, 115, 75, 133, 160, 105, 132, 179, 124, 48, 73, 93, 39, 95, 195, 29, 177, 185, 161"
	order300 = "169, 221, 146, 296, 92, 229, 49, 70, 126, 77, 243, 57, 120, 223, 27, 217, 154, 8, 101, 182, 54, 50, 97, 162, 28, 193, 79, 6, 151, 0, 173, 187, 44, 277, 157, 16, 257, 122, 35, 9, 171, 176, 134, 4, 87, 255, 112, 153, 246, 286, 147, 186, 107, 98, 10, 7, 266, 214, 36, 165, 139, 254, 103, 269, 59, 23, 298, 39, 73, 208, 135, 299, 102, 20, 12, 268, 11, 209, 161, 210, 74, 42, 56, 99, 235, 133, 159, 189, 145, 238, 215, 241, 138, 195, 233, 279, 88, 199, 64, 280, 26, 203, 17, 245, 174, 236, 137, 252, 80, 68, 181, 150, 118, 94, 75, 2, 109, 119, 232, 15, 69, 184, 201, 261, 55, 287, 273, 66, 175, 32, 142, 136, 116, 76, 179, 1, 91, 248, 275, 240, 290, 170, 132, 106, 265, 270, 85, 19, 284, 43, 259, 293, 228, 200, 104, 227, 51, 224, 163, 297, 216, 260, 93, 46, 100, 272, 105, 72, 131, 3, 156, 256, 249, 48, 113, 82, 172, 213, 62, 53, 271, 168, 253, 226, 183, 180, 276, 283, 78, 61, 143, 278, 30, 141, 196, 264, 231, 52, 222, 40, 125, 219, 65, 166, 192, 289, 45, 205, 89, 267, 90, 71, 167, 262, 281, 212, 96, 84, 127, 67, 294, 178, 288, 197, 21, 18, 111, 108, 58, 230, 188, 31, 110, 291, 129, 24, 204, 83, 81, 251, 60, 13, 128, 14, 86, 63, 117, 198, 274, 5, 22, 144, 258, 121, 38, 207, 148, 292, 41, 234, 237, 114, 202, 37, 149, 206, 155, 29, 130, 177, 194, 152, 34, 33, 239, 160, 140, 47, 244, 25, 282, 158, 211, 123, 190, 218, 164, 247, 263, 191, 220, 115, 242, 250, 124, 295, 95, 285, 225, 185"
)

func parseList(t *testing.T, s string) []int {
	t.Helper()
	var out []int
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

func TestPermutationMethodsOrders(t *testing.T) {
	for _, c := range []struct {
		n    int
		want string
	}{{100, order100}, {200, order200}, {300, order300}} {
		got, err := Permutation(1993, c.n)
		if err != nil {
			t.Fatal(err)
		}
		if want := parseList(t, c.want); !reflect.DeepEqual(got, want) {
			t.Errorf("n=%d seed 1993:\n got %v\nwant %v", c.n, got, want)
		}
	}
	// VTAB shuffled with 1993 would start 43, 41, 23, 14, 13, 40, 42, 22 (docs/METHODS.md §3.1).
	got, _ := Permutation(1993, 50)
	if want := []int{43, 41, 23, 14, 13, 40, 42, 22}; !reflect.DeepEqual(got[:8], want) {
		t.Errorf("n=50: got prefix %v, want %v", got[:8], want)
	}
}

// TestPermutationNumpyVectors compares with testdata/permutations.json,
// printed by testdata/make_permutations.py (numpy 1.24 legacy RandomState).
func TestPermutationNumpyVectors(t *testing.T) {
	b, err := os.ReadFile("testdata/permutations.json")
	if err != nil {
		t.Fatal(err)
	}
	var golden struct {
		Cases []struct {
			Seed  uint32
			N     int
			Order []int
		}
	}
	if err := json.Unmarshal(b, &golden); err != nil {
		t.Fatal(err)
	}
	if len(golden.Cases) < 30 {
		t.Fatalf("only %d golden cases", len(golden.Cases))
	}
	for _, c := range golden.Cases {
		got, err := Permutation(c.Seed, c.N)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, c.Order) {
			t.Errorf("seed %d n %d: got %v, want %v", c.Seed, c.N, got, c.Order)
		}
	}
}

func TestClassOrder(t *testing.T) {
	got, err := ClassOrder(5, 1993, false)
	if err != nil || !reflect.DeepEqual(got, []int{0, 1, 2, 3, 4}) {
		t.Errorf("no shuffle: %v %v", got, err)
	}
	got, _ = ClassOrder(0, 1, true)
	if len(got) != 0 {
		t.Errorf("n=0: %v", got)
	}
	if _, err := Permutation(1, -1); err == nil {
		t.Error("n=-1 accepted")
	}
}

func BenchmarkPermutation1000(b *testing.B) {
	for i := 0; i < b.N; i++ {
		Permutation(1993, 1000)
	}
}
