package testenv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestModuleRoot finds the go.mod two levels up.
func TestModuleRoot(t *testing.T) {
	root := ModuleRoot(t)
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatal(err)
	}
	if filepath.Join(root, "internal", "testenv") != mustAbs(t, ".") {
		t.Errorf("root %s is not two levels above this package", root)
	}
}

func mustAbs(t *testing.T, p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestRequire: nil returns; an error skips, or fails under CI=true, with a
// message naming what and how. Run in a subtest so the skip or failure is
// observed, not inherited.
func TestRequire(t *testing.T) {
	Require(t, nil, "nothing", "n/a") // returns
	for _, ci := range []string{"", "true"} {
		t.Setenv("CI", ci)
		inner := &recorder{TB: t}
		func() {
			defer func() { recover() }()
			Require(inner, errors.New("gone"), "the widget", "make widget")
		}()
		if ci == "true" && (!inner.failed || inner.skipped) || ci == "" && (!inner.skipped || inner.failed) {
			t.Errorf("CI=%q: failed %v, skipped %v", ci, inner.failed, inner.skipped)
		}
		if want := "the widget"; !contains(inner.msg, want) || !contains(inner.msg, "make widget") || !contains(inner.msg, "gone") {
			t.Errorf("CI=%q: message %q", ci, inner.msg)
		}
	}
}

// recorder captures Skipf/Fatalf instead of stopping the real test.
type recorder struct {
	testing.TB
	failed, skipped bool
	msg             string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(f string, a ...any) {
	r.failed, r.msg = true, sprintf(f, a...)
	panic("stop")
}
func (r *recorder) Skipf(f string, a ...any) {
	r.skipped, r.msg = true, sprintf(f, a...)
	panic("stop")
}

func sprintf(f string, a ...any) string { return fmt.Sprintf(f, a...) }
func contains(s, sub string) bool       { return strings.Contains(s, sub) }
