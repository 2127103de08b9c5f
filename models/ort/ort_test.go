package ort

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func fakeEnv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestFindORTLibOrder(t *testing.T) {
	env := map[string]string{"HOME": "/home/u", "XDG_CACHE_HOME": "/xdg", "CL_CACHE_DIR": "/clc", LibEnv: "/env/lib.so"}
	cases := []struct {
		flag  string
		unset []string
		want  string
		src   LibSource
	}{
		{"/flag/lib.so", nil, "/flag/lib.so", FromFlag},
		{"", nil, "/env/lib.so", FromEnv},
		{"", []string{LibEnv}, "/clc/onnxruntime-1.24.3/libonnxruntime.so.1", FromDefault},
		{"", []string{LibEnv, "CL_CACHE_DIR"}, "/xdg/cl/onnxruntime-1.24.3/libonnxruntime.so.1", FromDefault},
		{"", []string{LibEnv, "CL_CACHE_DIR", "XDG_CACHE_HOME"}, "/home/u/.cache/cl/onnxruntime-1.24.3/libonnxruntime.so.1", FromDefault},
	}
	for _, c := range cases {
		e := map[string]string{}
		for k, v := range env {
			e[k] = v
		}
		for _, k := range c.unset {
			delete(e, k)
		}
		got, src := FindLib(c.flag, fakeEnv(e))
		if got != c.want || src != c.src {
			t.Errorf("flag %q unset %v: got %s (%s), want %s (%s)", c.flag, c.unset, got, src, c.want, c.src)
		}
	}
}

func TestDefaultORTLibMatchesInstallScript(t *testing.T) {
	// The install script's default destination, evaluated by bash.
	out, err := exec.Command("bash", "-c", `cache=${CL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cl}; echo "$cache/onnxruntime-$(sed -n 's/^version=//p' ../../scripts/install-onnxruntime.sh)/libonnxruntime.so.1"`).Output()
	if err != nil {
		t.Skipf("bash not available: %v", err)
	}
	if got, want := DefaultLib(os.Getenv), strings.TrimSpace(string(out)); got != want {
		t.Fatalf("DefaultLib = %s, install script uses %s", got, want)
	}
}

func TestParseDevice(t *testing.T) {
	good := map[string]Device{"": {}, "cpu": {}, "CPU": {}, "cuda": {CUDA: true}, "cuda:0": {CUDA: true}, "cuda:3": {CUDA: true, ID: 3}, " cuda:1 ": {CUDA: true, ID: 1}}
	for s, want := range good {
		got, err := ParseDevice(s)
		if err != nil || got != want {
			t.Errorf("ParseDevice(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"tpu", "gpu", "cuda:x", "cuda:", "cuda:-1", "cuda0", "cpu:0", "cuda:1.5"} {
		if _, err := ParseDevice(s); err == nil {
			t.Errorf("ParseDevice(%q) accepted", s)
		} else if !strings.Contains(err.Error(), s) {
			t.Errorf("ParseDevice(%q): error %q does not name the value", s, err)
		}
	}
	if s := (Device{CUDA: true, ID: 2}).String(); s != "cuda:2" {
		t.Errorf("String = %s", s)
	}
}

// The library checks run in a child process: a process loads ONNX Runtime
// only once, and the other tests load the real one.
func TestInitORTErrors(t *testing.T) {
	if os.Getenv("CL_TEST_CHILD") == "1" {
		return
	}
	dir := t.TempDir()
	notLib := filepath.Join(dir, "libonnxruntime.so.1")
	os.WriteFile(notLib, []byte("not a shared library"), 0o644)
	cases := []struct {
		flag, env string
		want      []string
	}{
		{filepath.Join(dir, "missing.so"), "", []string{"ONNX Runtime library not found at " + filepath.Join(dir, "missing.so"), "(from --ort-lib)", "install it with: scripts/install-onnxruntime.sh"}},
		{"", filepath.Join(dir, "nope.so"), []string{"not found at " + filepath.Join(dir, "nope.so"), "(from CL_ORT_LIB)", "scripts/install-onnxruntime.sh"}},
		{notLib, "", []string{"cannot load ONNX Runtime from " + notLib, "install it with: scripts/install-onnxruntime.sh"}},
	}
	if _, err := os.Stat("/lib/x86_64-linux-gnu/libm.so.6"); err == nil {
		// A real shared library that is not ONNX Runtime (no OrtGetApiBase).
		cases = append(cases, struct {
			flag, env string
			want      []string
		}{"/lib/x86_64-linux-gnu/libm.so.6", "", []string{"cannot load ONNX Runtime from /lib/x86_64-linux-gnu/libm.so.6", "1.24.3 or newer (C API 24)"}})
	}
	for _, c := range cases {
		cmd := exec.Command(os.Args[0], "-test.run=^TestInitORTChild$", "-test.v")
		cmd.Env = append(os.Environ(), "CL_TEST_CHILD=1", "CL_TEST_FLAG="+c.flag, LibEnv+"="+c.env)
		out, _ := cmd.CombinedOutput()
		for _, w := range c.want {
			if !strings.Contains(string(out), w) {
				t.Errorf("flag %q env %q: output lacks %q:\n%s", c.flag, c.env, w, out)
			}
		}
	}
}

func TestInitORTChild(t *testing.T) {
	if os.Getenv("CL_TEST_CHILD") != "1" {
		return // a helper for TestInitORTErrors
	}
	_, err := Init(os.Getenv("CL_TEST_FLAG"))
	t.Logf("Init error: %v", err)
	if err == nil {
		t.Fatal("Init succeeded")
	}
	// A failed load leaves the process free to load the real library.
	if _, err := os.Stat(DefaultLib(os.Getenv)); err == nil {
		if _, err := Init(DefaultLib(os.Getenv)); err != nil {
			t.Fatalf("after a failed load, the real library fails: %v", err)
		}
		t.Log("recovered: real library loaded")
	}
}

func TestInitORTOnce(t *testing.T) {
	needORT(t)
	p1, err := Init("")
	if err != nil {
		t.Fatal(err)
	}
	p2, err := Init(p1)
	if err != nil || p2 != p1 {
		t.Fatalf("same library again: %s %v", p2, err)
	}
	if _, err := Init("/lib/x86_64-linux-gnu/libm.so.6"); err == nil || !strings.Contains(err.Error(), "already loaded") {
		t.Fatalf("switching library: %v", err)
	}
	if v := VersionLoaded(); !strings.HasPrefix(v, "1.") {
		t.Fatalf("version %q", v)
	}
}
