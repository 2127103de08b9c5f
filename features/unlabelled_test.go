package features

import (
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestUnlabelled: a file without classes holds rows labelled Unlabelled
// (cl extract of unlabelled images). Read refuses it, naming what takes it;
// ReadAny returns it; labels other than Unlabelled need classes, and
// Unlabelled needs a file without classes.
func TestUnlabelled(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "u.safetensors")
	w, err := Create(path, Header{D: 2, Model: "m.onnx", ModelSHA256: "abc", Source: "images:x"}, []string{"a.png", "b.png"})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Append([]float32{1, 2}, 0, "a.png"); err == nil || !strings.Contains(err.Error(), "label 0 outside the 0 classes") {
		t.Fatalf("label 0 without classes: %v", err)
	}
	for i, id := range []string{"a.png", "b.png"} {
		if err := w.Append([]float32{float32(i), 2}, Unlabelled, id); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(path); !errors.Is(err, ErrUnlabelled) || !strings.Contains(err.Error(), "u.safetensors: the rows are unlabelled") {
		t.Fatalf("Read of an unlabelled file: %v", err)
	}
	s, err := ReadAny(path)
	if err != nil {
		t.Fatal(err)
	}
	if s.Labelled() || len(s.Classes) != 0 || !reflect.DeepEqual(s.Labels, []int{Unlabelled, Unlabelled}) || !reflect.DeepEqual(s.IDs, []string{"a.png", "b.png"}) {
		t.Fatalf("read %+v", s)
	}
	// Set.Write round trip of the unlabelled set.
	if err := s.Write(filepath.Join(dir, "u2.safetensors")); err != nil {
		t.Fatal(err)
	}
	if back, err := ReadAny(filepath.Join(dir, "u2.safetensors")); err != nil || !reflect.DeepEqual(back, s) {
		t.Fatalf("round trip: %+v %v", back, err)
	}
	// A labelled file may not hold Unlabelled rows.
	bad := &Set{N: 1, D: 1, X: []float32{1}, Labels: []int{Unlabelled}, Classes: []string{"cat"}}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "row 0 has label -1 outside the 1 classes") {
		t.Fatalf("Unlabelled row in a labelled set: %v", err)
	}
}
