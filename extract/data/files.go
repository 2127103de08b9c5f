package data

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// ImageExtensions are the file name endings (compared case-insensitively)
// that an ImageFolder counts as images: torchvision's IMG_EXTENSIONS plus
// .gif. A file that has one of them but does not decode is skipped with a
// warning at extraction time.
var ImageExtensions = []string{".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", ".gif"}

// IsImageName reports whether name ends in one of ImageExtensions, ignoring
// case.
func IsImageName(name string) bool {
	lower := strings.ToLower(name)
	for _, e := range ImageExtensions {
		if strings.HasSuffix(lower, e) {
			return true
		}
	}
	return false
}

// Files is a data set of image files: an ImageFolder or a CSV list. Load
// reads the file's bytes; decoding is the caller's job.
type Files struct {
	spec    string
	paths   []string // as opened
	ids     []string
	labels  []int
	classes []string
}

// Len is the number of image files.
func (s *Files) Len() int { return len(s.paths) }

// Classes are the class names (folder names, or CSV labels).
func (s *Files) Classes() []string { return s.classes }

// Label is sample i's class.
func (s *Files) Label(i int) int { return s.labels[i] }

// ID is the file's path relative to the data set: "cat/001.jpg" for an
// ImageFolder (forward slashes), the path as written for a CSV list.
func (s *Files) ID(i int) string { return s.ids[i] }

// Path is the file of sample i as opened.
func (s *Files) Path(i int) string { return s.paths[i] }

// Spec is the --data spec.
func (s *Files) Spec() string { return s.spec }

// Load reads the bytes of file i. Errors name the file.
func (s *Files) Load(i int) (Sample, error) {
	b, err := os.ReadFile(s.paths[i])
	if err != nil {
		return Sample{}, err // *PathError names the file
	}
	return Sample{Encoded: b}, nil
}

// Close is a no-op: files are opened per Load.
func (s *Files) Close() error { return nil }

// OpenFolder opens an ImageFolder as torchvision.datasets.ImageFolder does:
// classes are the sub-folders of dir sorted by name (label = position);
// each class folder is walked recursively (following symbolic links), the
// folders in sorted order and the files of each folder sorted by name, and a
// file is an image when IsImageName says so. A class folder without images is
// an error, as in torchvision.
func OpenFolder(dir string) (*Files, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading image folder: %w", err)
	}
	s := &Files{spec: dir}
	for _, e := range entries {
		if isDir(filepath.Join(dir, e.Name()), e) {
			s.classes = append(s.classes, e.Name())
		}
	}
	sort.Strings(s.classes)
	if len(s.classes) == 0 {
		return nil, fmt.Errorf("image folder %s has no class sub-folders; want %s/<class>/<image>", dir, dir)
	}
	for label, class := range s.classes {
		var roots []walked
		if err := walkFolder(filepath.Join(dir, class), map[string]bool{}, &roots); err != nil {
			return nil, err
		}
		sort.Slice(roots, func(i, j int) bool { return roots[i].dir < roots[j].dir })
		n := 0
		for _, r := range roots {
			for _, f := range r.files {
				p := filepath.Join(r.dir, f)
				rel, err := filepath.Rel(dir, p)
				if err != nil {
					rel = p
				}
				s.paths = append(s.paths, p)
				s.ids = append(s.ids, filepath.ToSlash(rel))
				s.labels = append(s.labels, label)
				n++
			}
		}
		if n == 0 {
			return nil, fmt.Errorf("class folder %s has no images (%s); remove it or add images",
				filepath.Join(dir, class), strings.Join(ImageExtensions, " "))
		}
	}
	return s, nil
}

type walked struct {
	dir   string
	files []string // image names, sorted
}

// walkFolder lists dir and its sub-folders (following links; a folder seen
// twice through links is walked once).
func walkFolder(dir string, seen map[string]bool, out *[]walked) error {
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return fmt.Errorf("reading image folder: %w", err)
	}
	if seen[real] {
		return nil
	}
	seen[real] = true
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("reading image folder: %w", err)
	}
	w := walked{dir: dir}
	var subs []string
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if isDir(p, e) {
			subs = append(subs, p)
		} else if IsImageName(e.Name()) {
			w.files = append(w.files, e.Name())
		}
	}
	sort.Strings(w.files)
	*out = append(*out, w)
	for _, p := range subs {
		if err := walkFolder(p, seen, out); err != nil {
			return err
		}
	}
	return nil
}

func isDir(path string, e os.DirEntry) bool {
	if e.IsDir() {
		return true
	}
	if e.Type()&os.ModeSymlink != 0 {
		st, err := os.Stat(path)
		return err == nil && st.IsDir()
	}
	return false
}

// OpenList opens a CSV file of "path,label" rows. A first row whose fields
// are a header ("path"/"file"/"filename"/"image", then "label"/"class") is
// skipped. Relative paths are resolved against the CSV's folder. The classes
// are the distinct labels, sorted numerically when all of them are
// non-negative integers and by name otherwise. Every file must exist.
func OpenList(file, spec string) (*Files, error) {
	if file == "" {
		return nil, fmt.Errorf("--data %s: want list:FILE.csv", spec)
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("reading file list: %w", err)
	}
	defer f.Close()
	s, err := readList(f, file, filepath.Dir(file), spec, true)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// readList parses CSV rows; with check, every file must exist.
func readList(r io.Reader, file, base, spec string, check bool) (*Files, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	s := &Files{spec: spec}
	var names []string
	var missing []string
	nMissing := 0
	for row := 0; ; row++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		line, _ := cr.FieldPos(0)
		if len(rec) != 2 {
			return nil, fmt.Errorf("%s: line %d has %d fields; want 2 (path,label)", file, line, len(rec))
		}
		p, y := strings.TrimSpace(rec[0]), strings.TrimSpace(rec[1])
		if row == 0 && isHeader(p, y) {
			continue
		}
		if p == "" || y == "" {
			return nil, fmt.Errorf("%s: line %d: empty path or label", file, line)
		}
		full := p
		if !filepath.IsAbs(full) {
			full = filepath.Join(base, p)
		}
		if check {
			if st, err := os.Stat(full); err != nil || st.IsDir() {
				nMissing++
				if len(missing) < 5 {
					why := "missing"
					if err == nil {
						why = "a folder"
					}
					missing = append(missing, fmt.Sprintf("line %d: %s (%s)", line, full, why))
				}
			}
		}
		s.paths = append(s.paths, full)
		s.ids = append(s.ids, p)
		names = append(names, y)
	}
	if nMissing > 0 {
		more := ""
		if nMissing > len(missing) {
			more = fmt.Sprintf("; and %d more", nMissing-len(missing))
		}
		return nil, fmt.Errorf("%s: %d listed files are not readable image files: %s%s (paths are relative to the CSV's folder %s)",
			file, nMissing, strings.Join(missing, "; "), more, base)
	}
	if len(s.paths) == 0 {
		return nil, fmt.Errorf("%s: no rows; want path,label lines", file)
	}
	s.classes = sortedLabels(names)
	index := make(map[string]int, len(s.classes))
	for i, c := range s.classes {
		index[c] = i
	}
	s.labels = make([]int, len(names))
	for i, n := range names {
		s.labels[i] = index[n]
	}
	return s, nil
}

func isHeader(a, b string) bool {
	a, b = strings.ToLower(a), strings.ToLower(b)
	return (a == "path" || a == "file" || a == "filename" || a == "image") && (b == "label" || b == "class")
}

// sortedLabels returns the distinct labels, numerically sorted when all are
// non-negative integers, else sorted by name.
func sortedLabels(names []string) []string {
	set := map[string]bool{}
	var out []string
	for _, n := range names {
		if !set[n] {
			set[n] = true
			out = append(out, n)
		}
	}
	numeric := true
	vals := map[string]uint64{}
	for _, n := range out {
		v, err := strconv.ParseUint(n, 10, 64)
		if err != nil {
			numeric = false
			break
		}
		vals[n] = v
	}
	slices.SortFunc(out, func(a, b string) int {
		if numeric && vals[a] != vals[b] {
			if vals[a] < vals[b] {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	return out
}
