package features

import (
	"bytes"
	"os"
	"reflect"
	"strings"
	"testing"
)

func TestValidateClasses(t *testing.T) {
	if err := ValidateClasses([]string{"cat", "dog", "", "ü"}); err != nil {
		t.Fatal(err)
	}
	if err := ValidateClasses([]string{"cat", "dog", "cat"}); err == nil || !strings.Contains(err.Error(), `"cat" is listed twice (classes 0 and 2)`) {
		t.Errorf("repeated: %v", err)
	}
	// Two different invalid names would both become "\ufffd" in JSON.
	if err := ValidateClasses([]string{"ok", "\xff"}); err == nil || !strings.Contains(err.Error(), "class 1") || !strings.Contains(err.Error(), "UTF-8") {
		t.Errorf("invalid UTF-8: %v", err)
	}
}

func TestMapClasses(t *testing.T) {
	to := []string{"cat", "dog"}
	index, merged := MapClasses(to, []string{"bird", "dog", "fish"})
	if !reflect.DeepEqual(index, []int{2, 1, 3}) || !reflect.DeepEqual(merged, []string{"cat", "dog", "bird", "fish"}) {
		t.Fatalf("index %v merged %v", index, merged)
	}
	if !reflect.DeepEqual(to, []string{"cat", "dog"}) {
		t.Fatalf("to was modified: %v", to)
	}
	// The definition: merged[index[c]] == from[c], and to is a prefix.
	from := []string{"z", "cat", "y", "dog"}
	index, merged = MapClasses(to, from)
	for c, k := range index {
		if merged[k] != from[c] {
			t.Errorf("merged[%d] = %q, want %q", k, merged[k], from[c])
		}
	}
	if !reflect.DeepEqual(merged[:2], to) || len(merged) != 4 {
		t.Errorf("merged %v", merged)
	}
	if index, merged := MapClasses(nil, nil); len(index) != 0 || len(merged) != 0 {
		t.Errorf("empty: %v %v", index, merged)
	}
}

// TestReadRefusesBadClasses: a file with repeated or invalid class names is
// refused on reading and on writing (they would merge classes silently).
func TestReadRefusesBadClasses(t *testing.T) {
	path := t.TempDir() + "/f.safetensors"
	s := testSet([]string{"a", "b"}, []int{0, 1}, []string{"cat", "cat"}, 2, 0)
	if err := s.Write(path); err == nil || !strings.Contains(err.Error(), "listed twice") {
		t.Fatalf("write: %v", err)
	}
	if _, err := Create(path, Header{D: 2, Classes: []string{"x", "x"}}, nil); err == nil || !strings.Contains(err.Error(), "listed twice") {
		t.Fatalf("create: %v", err)
	}
	// A file written by another program: same bytes but "dog" renamed "cat".
	s.Classes = []string{"cat", "dog"}
	if err := s.Write(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Replace(b, []byte(`[\"cat\",\"dog\"]`), []byte(`[\"cat\",\"cat\"]`), 1)
	if bytes.Equal(bad, b) {
		t.Fatal("class list not found in the file")
	}
	if err := os.WriteFile(path, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(path); err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), `"cat" is listed twice`) {
		t.Fatalf("read: %v", err)
	}
}
