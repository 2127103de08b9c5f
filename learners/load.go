package learners

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/cl-dev/cl/heads"
	"github.com/cl-dev/cl/tune"
)

// Learner files (the format of l2p_common.go's saveLearner, docs/TRAINING.md)
// are opened by the method they record: Open reads the header, checks the
// weights fingerprint and dispatches to the method's LoadX. The commands
// that keep a learner between runs (cl fit, eval, predict, serve) go
// through here.

// loaders are the methods whose whole trained state is a learner file:
// the prompt learners, EASE, and the adapted ones (aper-*, ranpac-phase1:
// adapted parameters + head, aper_file.go). The frozen heads keep head
// files and are not listed.
var loaders = map[string]func(Env, string) (Learner, error){
	"l2p":              func(e Env, p string) (Learner, error) { return LoadL2P(e, p) },
	"dualprompt":       func(e Env, p string) (Learner, error) { return LoadDualPrompt(e, p) },
	"coda-prompt":      func(e Env, p string) (Learner, error) { return LoadCODAPrompt(e, p) },
	"ease":             func(e Env, p string) (Learner, error) { return LoadEASE(e, p) },
	"aper-adapter":     LoadAdapted,
	"aper-ssf":         LoadAdapted,
	"aper-vpt-deep":    LoadAdapted,
	"aper-vpt-shallow": LoadAdapted,
	"ranpac-phase1":    LoadAdapted,
}

// Stored reports whether method keeps its trained state in a learner file
// that Open reads (l2p, dualprompt, coda-prompt, ease, aper-*,
// ranpac-phase1).
func Stored(method string) bool { _, ok := loaders[method]; return ok }

// StoredNames lists the methods Stored accepts, sorted.
func StoredNames() []string {
	var s []string
	for n := range loaders {
		s = append(s, n)
	}
	sort.Strings(s)
	return s
}

// FileInfo is what a learner file records besides its tensors.
type FileInfo struct {
	Path string
	// Method is the registry name; WeightsSHA256 the SHA-256 (hex) of the
	// pre-trained ViT checkpoint the learner was trained on.
	Method, WeightsSHA256 string
	// Names are the run's class names (index = global label), fixed when
	// the first stage was learned.
	Names []string
	// Learned are the global labels learned, in stage order; Stages the
	// number of stages learned.
	Learned []int
	Stages  int
	// Heads is the number of attention heads the ViT was run with (cl
	// --heads, resolved) and TrainSeed the training seed (Env.Seed, cl
	// --train-seed) of its stages; 0 and HasTrainSeed false in files that
	// do not record them.
	Heads        int
	TrainSeed    uint64
	HasTrainSeed bool
}

// maxHeader bounds the JSON header ReadFileInfo reads (a learner's header
// lists a few dozen tensors; its state a few thousand class names).
const maxHeader = 64 << 20

// ReadFileInfo reads the header of the learner file at path (no tensor
// data). A head file, or a learner file of a method Open cannot load, is an
// error saying what to do.
func ReadFileInfo(path string) (FileInfo, error) {
	fi := FileInfo{Path: path}
	f, err := os.Open(path)
	if err != nil {
		return fi, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fi, err
	}
	var n uint64
	if err := binary.Read(f, binary.LittleEndian, &n); err != nil {
		return fi, fmt.Errorf("%s is not a cl learner file (not safetensors: %v)", path, err)
	}
	if n > maxHeader || int64(n) > st.Size()-8 {
		return fi, fmt.Errorf("%s is not a cl learner file (a safetensors header of %d bytes in a %d-byte file)", path, n, st.Size())
	}
	hdr := make([]byte, n)
	if _, err := io.ReadFull(f, hdr); err != nil {
		return fi, fmt.Errorf("%s: reading the header: %w", path, err)
	}
	var top struct {
		Metadata map[string]string `json:"__metadata__"`
	}
	if err := json.Unmarshal(hdr, &top); err != nil {
		return fi, fmt.Errorf("%s is not a cl learner file (header: %v)", path, err)
	}
	md := top.Metadata
	switch md["format"] {
	case learnerFormat:
	case heads.FileFormat:
		return fi, fmt.Errorf("%s is a head file (%s), not a learner file: use it with --head", path, md["method"])
	default:
		return fi, fmt.Errorf("%s is not a cl learner file (format %q, want %q)", path, md["format"], learnerFormat)
	}
	fi.Method, fi.WeightsSHA256 = md["learner.method"], md["learner.weights"]
	if fi.Heads, fi.TrainSeed, fi.HasTrainSeed, err = runMetadata(path, md); err != nil {
		return fi, err
	}
	if !Stored(fi.Method) {
		return fi, fmt.Errorf("%s holds a learner of method %q, which this cl cannot load (it loads %s)", path, fi.Method, strings.Join(StoredNames(), ", "))
	}
	// Every method's state JSON has "names"; the prompt methods list the
	// classes learned in "seen" with a stage count, EASE per stage.
	var state struct {
		Names        []string `json:"names"`
		Seen         []int    `json:"seen"`
		Stages       int      `json:"stages"`
		StageClasses [][]int  `json:"stage_classes"`
	}
	if err := json.Unmarshal([]byte(md["learner.state"]), &state); err != nil {
		return fi, fmt.Errorf("%s: %s state: %w", path, fi.Method, err)
	}
	fi.Names, fi.Learned, fi.Stages = state.Names, state.Seen, state.Stages
	if state.StageClasses != nil {
		fi.Learned, fi.Stages = nil, len(state.StageClasses)
		for _, c := range state.StageClasses {
			fi.Learned = append(fi.Learned, c...)
		}
	}
	for _, c := range fi.Learned {
		if c < 0 || c >= len(fi.Names) {
			return fi, fmt.Errorf("%s: learned class %d is outside its %d class names", path, c, len(fi.Names))
		}
	}
	return fi, nil
}

// ErrOtherWeights marks a learner file trained on other pre-trained
// weights than the ones given.
var ErrOtherWeights = errors.New("trained on other pre-trained weights")

// Open reads the learner file at path with the method it records. The
// file's weights fingerprint is checked against env.WeightsSHA256 from its
// header, before any tensor is read; a mismatch wraps ErrOtherWeights and
// names the file. So are the attention heads it records, against env's
// ViT. The caller closes the learner (Close).
func Open(env Env, path string) (Learner, FileInfo, error) {
	fi, err := ReadFileInfo(path)
	if err != nil {
		return nil, fi, err
	}
	if fi.WeightsSHA256 != env.WeightsSHA256 {
		return nil, fi, fmt.Errorf("%s: %w: the %s learner was trained on weights with SHA-256 %s, but the given weights have %s; its %s only work in the backbone they were trained in (give that checkpoint with --weights)",
			path, ErrOtherWeights, fi.Method, short(fi.WeightsSHA256), short(env.WeightsSHA256), trainedParts(fi.Method))
	}
	if err := checkHeads(path, fi.Method, fi.Heads, env); err != nil {
		return nil, fi, err
	}
	l, err := loaders[fi.Method](env, path)
	if err != nil {
		return nil, fi, err
	}
	return l, fi, nil
}

func trainedParts(method string) string {
	switch {
	case method == "ease":
		return "adapters"
	case isAdaptedMethod(method):
		return "adapted parameters"
	}
	return "prompts"
}

// Close releases a learner's ONNX Runtime sessions, when it has any.
func Close(l Learner) {
	if c, ok := l.(interface{ Close() }); ok {
		c.Close()
	}
}

// CacheDropper is a learner that caches what it computed about evaluation
// data sets, keyed by the data set (the prompt methods' frozen queries,
// EASE's per-adapter features): DropCache forgets d.
type CacheDropper interface {
	DropCache(d *tune.Dataset)
}

// Forget drops what a learner cached about the evaluation images d
// (CacheDropper). The caches serve cl bench, which scores one test set at
// every stage; a server that scores every request's images once calls
// Forget after Scores so that memory does not grow with the requests.
func Forget(l Learner, d *tune.Dataset) {
	switch x := l.(type) {
	case CacheDropper:
		x.DropCache(d)
	}
}
