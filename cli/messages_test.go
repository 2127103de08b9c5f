package cli

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestMessagesSayWhatToDo: the errors a user meets name the command to run
// (not a Go function), and say what APER needs instead of quietly being
// SimpleCIL.
func TestMessagesSayWhatToDo(t *testing.T) {
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	writeClusters(t, p("a.safetensors"), classNames(4), nil, 5, 8, 0, "mnv2")
	writeClusters(t, p("t.safetensors"), classNames(4), nil, 2, 8, 0.01, "mnv2")
	if _, stderr, err := runHeadsCL("fit", "--method", "lda", "--features", p("a.safetensors"), "--head", p("lda.safetensors")); err != nil {
		t.Fatal(err, stderr)
	}
	_, _, err := runHeadsCL("forget", "--head", p("lda.safetensors"), "--class", "class01")
	if err == nil || !strings.Contains(err.Error(), "cl features select") || !strings.Contains(err.Error(), "cl forget --head") ||
		!strings.Contains(err.Error(), "an lda head") || strings.Contains(err.Error(), "Unlearn") {
		t.Errorf("lda forget --class: %v", err)
	}
	for _, args := range [][]string{
		{"fit", "--method", "aper", "--features", p("a.safetensors"), "--head", p("aper.safetensors")},
		{"bench", "--method", "aper", "--train", p("a.safetensors"), "--test", p("t.safetensors"), "--inc", "2"},
	} {
		_, _, err := runHeadsCL(args...)
		if exitCode(err) != 2 || !strings.Contains(err.Error(), "two feature files") || !strings.Contains(err.Error(), "simplecil") {
			t.Errorf("%s with one file: %v", args[0], err)
		}
	}
	out, _, err := runHeadsCL("fit", "--method", "ncm", "--features", p("a.safetensors"), "--head", p("n.safetensors"))
	if err != nil || !strings.Contains(out, "learned 20 rows of 4 classes; the head now scores 4 classes") {
		t.Errorf("fit summary %q, %v", out, err)
	}
	out, _, err = runHeadsCL("forget", "--head", p("n.safetensors"), "--class", "class00", "--class", "class01", "--class", "class02")
	if err != nil || !strings.Contains(out, "removed 3 classes") || !strings.Contains(out, "(1 class left)") {
		t.Errorf("forget summary %q, %v", out, err)
	}
}
