package data

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestClassNamesUTF8: class names that JSON cannot hold exactly (invalid
// UTF-8) are refused, naming the line or folder; ids are made valid but
// stay distinct.
func TestClassNamesUTF8(t *testing.T) {
	dir := t.TempDir()
	p := func(s string) string { return filepath.Join(dir, s) }
	writeFile(t, p("a.png"), []byte("x"))
	writeFile(t, p("b\xff.png"), []byte("x"))
	writeFile(t, p("b\xfe.png"), []byte("x"))
	writeFile(t, p("bad.csv"), []byte("a.png,ok\na.png,caf\xe9\na.png,caf\xe8\n"))
	writeFile(t, p("names.txt"), []byte("one\ntw\xff\n"))
	writeFile(t, p("img.idx"), idxBytes([]int{1, 1, 1}, []byte{1}))
	writeFile(t, p("lab.idx"), idxBytes([]int{1}, []byte{0}))
	cases := []struct{ spec, want string }{
		{"list:" + p("bad.csv"), `bad.csv: line 2: label "caf\xe9" is not valid UTF-8`},
		{"idx:" + p("img.idx") + "," + p("lab.idx") + "," + p("names.txt"), `names.txt: line 2: class name "tw\xff" is not valid UTF-8`},
	}
	for _, c := range cases {
		_, err := Open(c.spec)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Open(%q) = %v, want error containing %q", c.spec, err, c.want)
		}
	}
	folder := t.TempDir()
	writeFile(t, filepath.Join(folder, "ok/a.png"), []byte("x"))
	if err := os.Mkdir(filepath.Join(folder, "caf\xe9"), 0o755); err != nil {
		t.Skip("file system refuses non-UTF-8 names:", err)
	}
	writeFile(t, filepath.Join(folder, "caf\xe9/a.png"), []byte("x"))
	if _, err := Open(folder); err == nil || !strings.Contains(err.Error(), `class folder "caf\xe9" is not valid UTF-8`) {
		t.Errorf("folder with a non-UTF-8 class: %v", err)
	}
	s, err := Open("images:" + dir)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := 0; i < s.Len(); i++ {
		ids = append(ids, s.ID(i))
	}
	if want := []string{"a.png", `b\xfe.png`, `b\xff.png`}; !reflect.DeepEqual(ids, want) {
		t.Fatalf("ids %q, want %q", ids, want)
	}
}

// TestUnlabelled: images:DIR, a one-column list and OpenPaths have no
// classes and label every sample Unlabelled, in a defined order.
func TestUnlabelled(t *testing.T) {
	dir := t.TempDir()
	p := func(s string) string { return filepath.Join(dir, s) }
	for _, f := range []string{"b.jpg", "a.png", "sub/c.gif", "notes.txt"} {
		writeFile(t, p(f), []byte(f))
	}
	writeFile(t, p("list.csv"), []byte("path\nsub/c.gif\na.png\n"))
	writeFile(t, p("mixed.csv"), []byte("a.png\nb.jpg,cat\n"))
	paths, err := OpenPaths([]string{p("b.jpg"), p("a.png")})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		spec string
		s    Source
		ids  []string
	}{
		{spec: "images:" + dir, ids: []string{"a.png", "b.jpg", "sub/c.gif"}},
		{spec: "list:" + p("list.csv"), ids: []string{"sub/c.gif", "a.png"}},
		{s: paths, ids: []string{p("b.jpg"), p("a.png")}},
	} {
		s := c.s
		if s == nil {
			if s, err = Open(c.spec); err != nil {
				t.Fatal(err)
			}
		}
		var ids []string
		for i := 0; i < s.Len(); i++ {
			ids = append(ids, s.ID(i))
			if s.Label(i) != Unlabelled {
				t.Errorf("%s: label %d of sample %d", s.Spec(), s.Label(i), i)
			}
		}
		if Labelled(s) || !reflect.DeepEqual(ids, c.ids) {
			t.Errorf("%s: classes %v ids %v, want none and %v", s.Spec(), s.Classes(), ids, c.ids)
		}
		if smp, err := s.Load(s.Len() - 1); err != nil || !strings.HasSuffix(c.ids[len(c.ids)-1], string(smp.Encoded)) {
			t.Errorf("%s: load: %q %v", s.Spec(), smp.Encoded, err)
		}
	}
	for _, c := range []struct{ spec, want string }{
		{"list:" + p("mixed.csv"), "mixed.csv: line 2 has 2 fields but the first row has 1"},
		{"images:" + p("a.png"), "is not a folder"},
		{"images:" + p("sub/none"), "no such file"},
		{"images:", "want images:DIR"},
	} {
		if _, err := Open(c.spec); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Open(%q) = %v, want error containing %q", c.spec, err, c.want)
		}
	}
	empty := t.TempDir()
	writeFile(t, filepath.Join(empty, "x.txt"), []byte("x"))
	if _, err := Open("images:" + empty); err == nil || !strings.Contains(err.Error(), "no images under") {
		t.Errorf("images: of a folder without images: %v", err)
	}
	if _, err := Open(empty); err == nil || !strings.Contains(err.Error(), "use --data images:"+empty) {
		t.Errorf("a folder without class folders: %v", err)
	}
}

// TestLimitKeepsPaths: a limited view of a file source still names the
// files (the list of skipped images shows paths, not only ids).
func TestLimitKeepsPaths(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a/1.png"), []byte("x"))
	writeFile(t, filepath.Join(dir, "a/2.png"), []byte("x"))
	s, err := OpenFirst(dir, 1)
	if err != nil {
		t.Fatal(err)
	}
	p, ok := s.(interface{ Path(int) string })
	if s.Len() != 1 || !ok || p.Path(0) != filepath.Join(dir, "a/1.png") {
		t.Fatalf("limited source: len %d, path %v", s.Len(), ok)
	}
}
