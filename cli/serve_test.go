package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cl-dev/cl/features"
	"github.com/cl-dev/cl/heads"
	"github.com/cl-dev/cl/models/ort"
)

const serveTiny = "../testdata/tinyvit/tinyvit.onnx"

func needORT(t *testing.T) {
	t.Helper()
	if _, err := ort.Init(""); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("ONNX Runtime is required under CI: %v", err)
		}
		t.Skipf("ONNX Runtime not available (install it with %s): %v", ort.InstallCommand, err)
	}
}

// serveProc is a `cl serve` child process.
type serveProc struct {
	cmd    *exec.Cmd
	url    string
	stderr *bytes.Buffer
	mu     *sync.Mutex
	exited chan struct{}
}

// startServe starts `cl serve` (this test binary run as cl) on a free
// port and waits until it listens.
func startServe(t *testing.T, args ...string) *serveProc {
	t.Helper()
	cmd := clProcess(append([]string{"serve", "--model", serveTiny, "--listen", "127.0.0.1:0", "--threads", "1"}, args...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &serveProc{cmd: cmd, stderr: &bytes.Buffer{}, mu: &sync.Mutex{}, exited: make(chan struct{})}
	cmd.Stderr = lockedWriter{p.mu, p.stderr}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { cmd.Wait(); close(p.exited) }()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "listening on ") {
		cmd.Process.Kill()
		<-p.exited
		t.Fatalf("cl serve did not start: %q %v\n%s", line, err, p.log())
	}
	p.url = strings.TrimSpace(strings.TrimPrefix(line, "listening on "))
	go io.Copy(io.Discard, out)
	t.Cleanup(func() { p.cmd.Process.Kill(); <-p.exited })
	return p
}

func (p *serveProc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

var httpc = &http.Client{Timeout: 30 * time.Second}

// post sends JSON with the token; it returns the status (0 when the
// connection failed) and the body.
func (p *serveProc) post(path, token string, v any) (int, []byte) {
	b, _ := json.Marshal(v)
	req, _ := http.NewRequest("POST", p.url+path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := httpc.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil
	}
	return resp.StatusCode, body
}

func (p *serveProc) getJSON(t *testing.T, path string, v any) {
	t.Helper()
	resp, err := httpc.Get(p.url + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v: %s", path, err, b)
	}
}

type crashSample struct {
	ID       string    `json:"id"`
	Class    string    `json:"class"`
	Features []float32 `json:"features"`
}

// ledger is the clients' shared record of what the server acknowledged.
type crashLedger struct {
	mu        sync.Mutex
	all       map[string]crashSample // every sample ever sent (features known)
	acked     map[string]bool        // learn acknowledged, not acknowledged-forgotten
	forgotten map[string]bool        // forget acknowledged (and not learned again)
	unsure    map[string]bool        // a learn or forget of it was in flight at the kill
}

// idNumber is the number in a sample id "s00042".
func idNumber(id string) int {
	n, _ := strconv.Atoi(strings.TrimPrefix(id, "s"))
	return n
}

// TestServeCrash kills `cl serve` with SIGKILL at random moments while
// learners and forgetters run concurrently, restarts it on the same state
// folder, and checks that every acknowledged learn and forget survived,
// that nothing else is present except requests in flight at the kill, and
// that the server scores probes bit for bit as `cl fit` of exactly the
// samples it holds (in its learning order). $CL_SERVE_CRASH_TRIALS sets the
// number of trials (default 3; docs/SERVE.md reports a run of 20).
func TestServeCrash(t *testing.T) {
	needORT(t)
	trials := 3
	if v, err := strconv.Atoi(os.Getenv("CL_SERVE_CRASH_TRIALS")); err == nil && v > 0 {
		trials = v
	}
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	tokFile := filepath.Join(dir, "token")
	const token = "crash-test-token-0123456789"
	os.WriteFile(tokFile, []byte(token+"\n"), 0o600)
	args := []string{"--method", "simplecil", "--state", state, "--token-file", tokFile, "--snapshot-every", "5"}
	l := &crashLedger{all: map[string]crashSample{}, acked: map[string]bool{}, forgotten: map[string]bool{}, unsure: map[string]bool{}}
	rng := rand.New(rand.NewPCG(1993, uint64(trials)))
	next := 0
	var nextMu sync.Mutex
	newSample := func(r *rand.Rand) crashSample {
		nextMu.Lock()
		next++
		id := fmt.Sprintf("s%05d", next)
		nextMu.Unlock()
		c := r.IntN(5)
		x := make([]float32, 32)
		for j := range x {
			x[j] = float32(r.NormFloat64()*0.3 + float64((c*3+j)%7))
		}
		return crashSample{ID: id, Class: fmt.Sprintf("c%d", c), Features: x}
	}
	probes := make([][]float32, 8)
	for i := range probes {
		probes[i] = newSample(rng).Features
	}
	totalAcked, totalForgot := 0, 0
	for trial := 0; trial < trials; trial++ {
		p := startServe(t, args...)
		verifyCrashState(t, p, l, probes, dir, trial)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for c := 0; c < 6; c++ {
			wg.Add(1)
			r := rand.New(rand.NewPCG(uint64(trial), uint64(c)))
			go func() {
				defer wg.Done()
				forgetter := c >= 4
				for {
					select {
					case <-stop:
						return
					default:
					}
					if forgetter {
						// Forgetters take even-numbered samples, one at a
						// time each; retries resend odd-numbered ones, so
						// the clients never race on one id.
						l.mu.Lock()
						var cands []string
						for id := range l.acked {
							if !l.unsure[id] && idNumber(id)%2 == 0 {
								cands = append(cands, id)
							}
						}
						if len(cands) < 5 {
							l.mu.Unlock()
							time.Sleep(time.Millisecond)
							continue
						}
						sort.Strings(cands)
						id := cands[r.IntN(len(cands))]
						l.unsure[id] = true
						l.mu.Unlock()
						code, body := p.post("/v1/forget", token, map[string][]string{"ids": {id}})
						l.mu.Lock()
						switch code {
						case 200:
							delete(l.unsure, id)
							delete(l.acked, id)
							l.forgotten[id] = true
							totalForgot++
						case 0: // the kill: stays unsure
						default:
							t.Errorf("forget %s: %d %s", id, code, body)
						}
						l.mu.Unlock()
						if code == 0 {
							return
						}
						continue
					}
					batch := make([]crashSample, 1+r.IntN(4))
					for i := range batch {
						batch[i] = newSample(r)
					}
					// Now and then, resend an acknowledged sample (a retry).
					retry := ""
					l.mu.Lock()
					for id := range l.acked {
						if !l.unsure[id] && idNumber(id)%2 == 1 && r.IntN(8) == 0 {
							retry = id
							break
						}
					}
					for _, s := range batch {
						l.all[s.ID] = s
						l.unsure[s.ID] = true
					}
					if retry != "" {
						batch = append(batch, l.all[retry])
					}
					l.mu.Unlock()
					code, body := p.post("/v1/learn", token, map[string]any{"samples": batch})
					l.mu.Lock()
					switch code {
					case 200:
						var rep struct{ Learned, Duplicates int }
						json.Unmarshal(body, &rep)
						if retry != "" && rep.Duplicates != 1 || rep.Learned+rep.Duplicates != len(batch) {
							t.Errorf("learn of %d samples (retry %q): %s", len(batch), retry, body)
						}
						for _, s := range batch {
							if s.ID != retry {
								delete(l.unsure, s.ID)
								l.acked[s.ID] = true
								totalAcked++
							}
						}
					case 0:
					default:
						t.Errorf("learn: %d %s", code, body)
					}
					l.mu.Unlock()
					if code == 0 {
						return
					}
				}
			}()
		}
		time.Sleep(time.Duration(30+rng.IntN(400)) * time.Millisecond)
		p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.exited
		close(stop)
		wg.Wait()
	}
	p := startServe(t, args...)
	verifyCrashState(t, p, l, probes, dir, trials)
	t.Logf("%d kill -9 trials: %d learns and %d forgets acknowledged", trials, totalAcked, totalForgot)
	// A clean stop (SIGTERM) drains, flushes and snapshots: nothing to replay.
	p.cmd.Process.Signal(syscall.SIGTERM)
	<-p.exited
	if code := p.cmd.ProcessState.ExitCode(); code != 0 || !strings.Contains(p.log(), "stopped cleanly") {
		t.Fatalf("SIGTERM: exit %d\n%s", code, p.log())
	}
	p = startServe(t, args...)
	for i := 0; i < 1000 && !strings.Contains(p.log(), "msg=serving"); i++ {
		time.Sleep(time.Millisecond) // stderr is copied by another goroutine
	}
	if !strings.Contains(p.log(), " replayed=0 ") {
		t.Errorf("after a clean stop the journal should be empty:\n%s", p.log())
	}
	verifyCrashState(t, p, l, probes, dir, trials+1)
}

// verifyCrashState checks the restarted server against the clients' ledger
// and against `cl fit` of the samples it holds (no client runs meanwhile).
func verifyCrashState(t *testing.T, p *serveProc, l *crashLedger, probes [][]float32, dir string, trial int) {
	t.Helper()
	var page struct {
		Total   int `json:"total"`
		Samples []struct{ ID, Class string }
	}
	p.getJSON(t, "/v1/samples?limit=10000", &page)
	if page.Total > 10000 {
		t.Fatalf("too many samples for one page: %d", page.Total)
	}
	present := map[string]bool{}
	for _, s := range page.Samples {
		present[s.ID] = true
		if l.all[s.ID].Class != s.Class {
			t.Fatalf("trial %d: sample %s has class %q, was sent as %q", trial, s.ID, s.Class, l.all[s.ID].Class)
		}
		if !l.acked[s.ID] && !l.unsure[s.ID] {
			t.Fatalf("trial %d: sample %s is present but was never acknowledged (forgotten: %v)", trial, s.ID, l.forgotten[s.ID])
		}
	}
	for id := range l.acked {
		if !present[id] && !l.unsure[id] {
			t.Fatalf("trial %d: acknowledged sample %s is missing after the restart", trial, id)
		}
	}
	// Settle the unsure ones by what the server holds.
	for id := range l.unsure {
		if present[id] {
			l.acked[id] = true
			delete(l.forgotten, id)
		} else {
			delete(l.acked, id)
		}
		delete(l.unsure, id)
	}
	if len(page.Samples) == 0 {
		return
	}
	// `cl fit` of exactly the held samples, in the server's learning order.
	var classes []string
	label := map[string]int{}
	set := &features.Set{D: 32, Model: "tinyvit.onnx", Source: "crash test"}
	for _, s := range page.Samples {
		k, ok := label[s.Class]
		if !ok {
			k = len(classes)
			classes = append(classes, s.Class)
			label[s.Class] = k
		}
		set.X = append(set.X, l.all[s.ID].Features...)
		set.Labels = append(set.Labels, k)
		set.IDs = append(set.IDs, s.ID)
		set.N++
	}
	set.Classes = classes
	fpath := filepath.Join(dir, fmt.Sprintf("held-%d.safetensors", trial))
	hpath := filepath.Join(dir, fmt.Sprintf("fit-%d.safetensors", trial))
	if err := set.Write(fpath); err != nil {
		t.Fatal(err)
	}
	if out, err := clProcess("fit", "--method", "simplecil", "--features", fpath, "--head", hpath).CombinedOutput(); err != nil {
		t.Fatalf("cl fit: %v\n%s", err, out)
	}
	h, info, err := heads.Load(hpath)
	if err != nil {
		t.Fatal(err)
	}
	var flat []float32
	for _, pr := range probes {
		flat = append(flat, pr...)
	}
	want, err := h.Scores(flat)
	if err != nil {
		t.Fatal(err)
	}
	code, body := p.post("/v1/predict", "", map[string]any{"features": probes, "top": len(h.Classes())})
	if code != 200 {
		t.Fatalf("predict: %d %s", code, body)
	}
	var rep struct {
		Predictions []struct {
			Top []struct {
				Class string
				Score float64
			}
		}
	}
	json.Unmarshal(body, &rep)
	cls := h.Classes()
	for i, pr := range rep.Predictions {
		if len(pr.Top) != len(cls) {
			t.Fatalf("trial %d probe %d: %d classes served, cl fit has %d", trial, i, len(pr.Top), len(cls))
		}
		for _, cs := range pr.Top {
			j := -1
			for k, lab := range cls {
				if info.Classes[lab] == cs.Class {
					j = k
				}
			}
			if j < 0 || want[i*len(cls)+j] != cs.Score {
				t.Fatalf("trial %d probe %d class %s: served %.17g, cl fit %v", trial, i, cs.Class, cs.Score, want[i*len(cls)+max(j, 0)])
			}
		}
	}
}

// TestServeUsage: command-line mistakes are usage errors (exit code 2)
// that say what to do.
func TestServeUsage(t *testing.T) {
	dir := t.TempDir()
	os.Unsetenv("CL_SERVE_TOKEN")
	short := filepath.Join(dir, "short")
	os.WriteFile(short, []byte("abc\n"), 0o600)
	for _, c := range []struct {
		args []string
		want string
		use  bool
	}{
		{[]string{"serve", "--state", dir}, "--model is required", true},
		{[]string{"serve", "--model", serveTiny}, "--state is required", true},
		{[]string{"serve", "--model", serveTiny, "--state", dir, "--method", "simplecil"}, "--insecure-no-auth", true},
		{[]string{"serve", "--model", serveTiny, "--state", dir, "--method", "simplecil", "--head", "h", "--insecure-no-auth"}, "not both", true},
		{[]string{"serve", "--model", serveTiny, "--state", dir, "--tls-cert", "c", "--insecure-no-auth"}, "go together", true},
		{[]string{"serve", "--model", serveTiny, "--state", dir, "--max-batch", "0", "--insecure-no-auth"}, "--max-batch 0", true},
		{[]string{"serve", "--model", serveTiny, "--state", dir, "--token-file", short}, "at least 16", false},
		{[]string{"serve", "--model", serveTiny, "--state", dir, "extra"}, "no arguments", true},
	} {
		_, _, err := runCLErr(c.args...)
		var ue UsageError
		if err == nil || !strings.Contains(err.Error(), c.want) || errors.As(err, &ue) != c.use {
			t.Errorf("%v: %v (usage error %v), want %q (usage %v)", c.args, err, errors.As(err, &ue), c.want, c.use)
		}
	}
	needORT(t)
	// A new state folder needs --head or --method.
	_, _, err := runCLErr("serve", "--model", serveTiny, "--state", filepath.Join(dir, "new"), "--insecure-no-auth", "--listen", "127.0.0.1:0")
	if err == nil || !strings.Contains(err.Error(), "--head HEAD.safetensors or --method NAME") {
		t.Errorf("no initial head: %v", err)
	}
}

// TestPredictImages: `cl predict --model` from an image folder writes the
// same CSV as `cl extract` followed by `cl predict --features`; from image
// files given as arguments, the same predictions for the same images.
func TestPredictImages(t *testing.T) {
	needORT(t)
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	names := []string{"img_rgb.jpg", "img_grey.png", "img_palette.gif", "img_rgba.png", "img_bmp.bmp", "img_wide.png"}
	var files []string
	for i, n := range names {
		cls := []string{"a", "b"}[i%2]
		os.MkdirAll(p("imgs/"+cls), 0o755)
		b, err := os.ReadFile(filepath.Join("../testdata/tinyvit", n))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(p("imgs/"+cls+"/"+n), b, 0o644)
		files = append(files, p("imgs/"+cls+"/"+n))
	}
	run := func(args ...string) string {
		t.Helper()
		out, stderr, err := runCLErr(args...)
		if err != nil {
			t.Fatalf("cl %v: %v\n%s", args, err, stderr)
		}
		return out
	}
	run("extract", "--model", serveTiny, "--data", p("imgs"), "--out", p("f.safetensors"), "--threads", "1")
	run("fit", "--method", "simplecil", "--features", p("f.safetensors"), "--head", p("h.safetensors"))
	want := run("predict", "--head", p("h.safetensors"), "--features", p("f.safetensors"), "--top", "2")
	got := run("predict", "--head", p("h.safetensors"), "--model", serveTiny, "--data", p("imgs"), "--top", "2", "--threads", "1")
	if got != want || strings.Count(got, "\n") != 7 {
		t.Fatalf("from images:\n%s\nfrom features:\n%s", got, want)
	}
	// Files as arguments: unlabelled rows with the same predictions.
	args := append([]string{"predict", "--head", p("h.safetensors"), "--model", serveTiny, "--top", "2"}, files...)
	loose := run(args...)
	pred := func(csv string) map[string]string { // image base name → predictions
		m := map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(csv), "\n")[1:] {
			f := strings.Split(line, ",")
			m[filepath.Base(f[1])] = strings.Join(f[3:], ",")
		}
		return m
	}
	if a, b := pred(loose), pred(want); len(a) != 6 || fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatalf("files as arguments: %v, from the folder: %v", a, b)
	}
	for _, bad := range [][]string{
		{"predict", "--head", p("h.safetensors"), "--model", serveTiny},
		{"predict", "--head", p("h.safetensors"), "--model", serveTiny, "--data", p("imgs"), files[0]},
		{"predict", "--head", p("h.safetensors"), "--model", serveTiny, "--features", p("f.safetensors"), "--data", p("imgs")},
		{"predict", "--head", p("h.safetensors"), "--features", p("f.safetensors"), "--data", p("imgs")},
		{"predict", "--head", p("h.safetensors"), "--features", p("f.safetensors"), files[0]},
	} {
		var ue UsageError
		if _, _, err := runCLErr(bad...); !errors.As(err, &ue) {
			t.Errorf("%v: %v, want a usage error", bad[3:], err)
		}
	}
}
