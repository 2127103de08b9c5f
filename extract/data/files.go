package data

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
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

// Files is a data set of image files: an ImageFolder or a CSV list
// (labelled), or a folder, a CSV list without labels, or files named one by
// one (unlabelled: no classes, every label Unlabelled). Load reads the
// file's bytes; decoding is the caller's job.
type Files struct {
	spec    string
	paths   []string // as opened
	ids     []string
	labels  []int // nil when unlabelled
	classes []string
}

// Len is the number of image files.
func (s *Files) Len() int { return len(s.paths) }

// Classes are the class names (folder names, or CSV labels).
func (s *Files) Classes() []string { return s.classes }

// Label is sample i's class, or Unlabelled.
func (s *Files) Label(i int) int {
	if s.labels == nil {
		return Unlabelled
	}
	return s.labels[i]
}

// ID is the file's path relative to the data set: "cat/001.jpg" for an
// ImageFolder (forward slashes), the path as written for a CSV list.
func (s *Files) ID(i int) string { return s.ids[i] }

// Path is the file of sample i as opened.
func (s *Files) Path(i int) string { return s.paths[i] }

// Spec is the --data spec.
func (s *Files) Spec() string { return s.spec }

// Load reads the bytes of file i. Errors name the file; a file that is not
// a regular file (a named pipe, a device) is refused without reading it
// (the error wraps ErrNotRegular).
func (s *Files) Load(i int) (Sample, error) {
	b, err := readRegular(s.paths[i])
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
// an error, as in torchvision; so is a class name that is not valid UTF-8.
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
		return nil, fmt.Errorf("image folder %s has no class sub-folders; want %s/<class>/<image> (for unlabelled images to predict, use --data images:%s)", dir, dir, dir)
	}
	for _, class := range s.classes {
		if !utf8.ValidString(class) {
			return nil, fmt.Errorf("image folder %s: class folder %q is not valid UTF-8; rename it (class names are stored as JSON text)", dir, class)
		}
	}
	for label, class := range s.classes {
		n, err := s.addImages(dir, filepath.Join(dir, class), label)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, fmt.Errorf("class folder %s has no images (%s); remove it or add images",
				filepath.Join(dir, class), strings.Join(ImageExtensions, " "))
		}
	}
	return s, nil
}

// OpenImages opens the images under dir, without labels, for prediction:
// dir is walked recursively as a class folder of an ImageFolder is (links
// followed, folders in sorted order, files sorted by name, images by
// IsImageName). The source has no classes and every label is Unlabelled;
// ids are paths relative to dir.
func OpenImages(dir, spec string) (*Files, error) {
	if dir == "" {
		return nil, fmt.Errorf("--data %s: want images:DIR", spec)
	}
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("--data %s: %w", spec, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("--data %s: %s is not a folder", spec, dir)
	}
	s := &Files{spec: spec}
	n, err := s.addImages(dir, dir, Unlabelled)
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, fmt.Errorf("--data %s: no images under %s (%s)", spec, dir, strings.Join(ImageExtensions, " "))
	}
	s.labels = nil
	return s, nil
}

// OpenPaths is the unlabelled source of the image files named by paths, in
// that order (the files of `cl extract IMAGE...`). Every path must name an
// existing regular file; ids are the paths as given.
func OpenPaths(paths []string) (*Files, error) {
	if len(paths) == 0 {
		return nil, fmt.Errorf("no image files given")
	}
	s := &Files{spec: "files:" + paths[0]}
	if len(paths) > 1 {
		s.spec += fmt.Sprintf(",… (%d files)", len(paths))
	}
	var bad []string
	for i, p := range paths {
		if why := fileProblem(p); why != "" {
			bad = append(bad, fmt.Sprintf("argument %d: %s (%s)", i+1, p, why))
		}
		s.paths = append(s.paths, p)
		s.ids = append(s.ids, validID(p))
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("%d of the image files given cannot be read: %s", len(bad), strings.Join(firstN(bad, 5), "; "))
	}
	return s, nil
}

// fileProblem is "" when path is an existing regular file, else why not
// ("missing", "a folder", "a named pipe (FIFO)", …).
func fileProblem(path string) string {
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "missing"
	case err != nil:
		return err.Error()
	case !st.Mode().IsRegular():
		return notRegular(st.Mode()).(notRegularError).kind
	}
	return ""
}

// firstN is the first n items, then "and K more".
func firstN(items []string, n int) []string {
	if len(items) <= n {
		return items
	}
	return append(items[:n:n], fmt.Sprintf("and %d more", len(items)-n))
}

// addImages appends the images under folder (walked recursively) with the
// given label; ids are relative to root. It returns how many it added.
func (s *Files) addImages(root, folder string, label int) (int, error) {
	var roots []walked
	if err := walkFolder(folder, map[string]bool{}, &roots); err != nil {
		return 0, err
	}
	sort.Slice(roots, func(i, j int) bool { return roots[i].dir < roots[j].dir })
	n := 0
	for _, r := range roots {
		for _, f := range r.files {
			p := filepath.Join(r.dir, f)
			rel, err := filepath.Rel(root, p)
			if err != nil {
				rel = p
			}
			s.paths = append(s.paths, p)
			s.ids = append(s.ids, validID(filepath.ToSlash(rel)))
			s.labels = append(s.labels, label)
			n++
		}
	}
	return n, nil
}

// validID makes a sample id valid UTF-8 (ids are stored as JSON text): a
// byte that is not part of valid UTF-8 becomes \xHH, so that file names
// with such bytes keep distinct ids.
func validID(id string) string {
	if utf8.ValidString(id) {
		return id
	}
	var b strings.Builder
	for i := 0; i < len(id); {
		r, size := utf8.DecodeRuneInString(id[i:])
		if r == utf8.RuneError && size == 1 {
			fmt.Fprintf(&b, `\x%02x`, id[i])
		} else {
			b.WriteString(id[i : i+size])
		}
		i += size
	}
	return b.String()
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

// OpenList opens a CSV file of "path,label" rows, or of "path" rows
// (unlabelled images, for prediction: no classes, every label Unlabelled;
// all rows must then have one field). A first row whose fields are a header
// ("path"/"file"/"filename"/"image", then "label"/"class") is skipped.
// Relative paths are resolved against the CSV's folder. The classes are the
// distinct labels, sorted numerically when all of them are non-negative
// integers and by name otherwise; a label that is not valid UTF-8 is an
// error naming its line. Every file must exist and be a regular file.
func OpenList(file, spec string) (*Files, error) {
	if file == "" {
		return nil, fmt.Errorf("--data %s: want list:FILE.csv", spec)
	}
	f, err := openRegular(file)
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
	fields := 0 // of the first data row: 2 = labelled, 1 = unlabelled
	for row := 0; ; row++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		line, _ := cr.FieldPos(0)
		if len(rec) != 1 && len(rec) != 2 {
			return nil, fmt.Errorf("%s: line %d has %d fields; want 2 (path,label) or 1 (path, unlabelled images)", file, line, len(rec))
		}
		p, y := strings.TrimSpace(rec[0]), ""
		if len(rec) == 2 {
			y = strings.TrimSpace(rec[1])
		}
		if row == 0 && isHeader(rec) {
			continue
		}
		if fields == 0 {
			fields = len(rec)
		} else if len(rec) != fields {
			return nil, fmt.Errorf("%s: line %d has %d fields but the first row has %d; give every row a label (path,label) or none (path)", file, line, len(rec), fields)
		}
		if p == "" || (fields == 2 && y == "") {
			return nil, fmt.Errorf("%s: line %d: empty path or label", file, line)
		}
		if !utf8.ValidString(y) {
			return nil, fmt.Errorf("%s: line %d: label %q is not valid UTF-8 (class names are stored as JSON text; re-encode the CSV as UTF-8)", file, line, y)
		}
		full := p
		if !filepath.IsAbs(full) {
			full = filepath.Join(base, p)
		}
		if check {
			if why := fileProblem(full); why != "" {
				nMissing++
				if len(missing) < 5 {
					missing = append(missing, fmt.Sprintf("line %d: %s (%s)", line, full, why))
				}
			}
		}
		s.paths = append(s.paths, full)
		s.ids = append(s.ids, validID(p))
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
		return nil, fmt.Errorf("%s: no rows; want path,label lines (or path lines for unlabelled images)", file)
	}
	if fields == 1 {
		return s, nil
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

// isHeader reports whether a first CSV row is a header: "path" (or file,
// filename, image), then "label" (or class) when there are two fields.
func isHeader(rec []string) bool {
	a := strings.ToLower(strings.TrimSpace(rec[0]))
	if a != "path" && a != "file" && a != "filename" && a != "image" {
		return false
	}
	if len(rec) == 1 {
		return true
	}
	b := strings.ToLower(strings.TrimSpace(rec[1]))
	return b == "label" || b == "class"
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
