package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/cl-dev/cl/heads"
)

// TestServeLedger: a head `cl serve` writes behaves under the offline
// ledger commands exactly as one `cl fit` writes. The real server learns
// images (with the ids `cl extract` gives them) and feature rows, stops
// with SIGTERM (a snapshot), and then on its head file: the ledger equals
// that of `cl fit` of the snapshot's samples file; `cl fit` of the same
// samples is refused as a repeat; `cl merge` with a head that learned some
// of them is refused; `cl forget --features` of the image rows as
// `cl extract` computes them offline works (the server's features are bit
// for bit extract's), gives the same head as on the fit-written one, and a
// second time is refused; a head of other samples then merges.
func TestServeLedger(t *testing.T) {
	needORT(t)
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	run := func(args ...string) string {
		t.Helper()
		out, stderr, err := runCLErr(args...)
		if err != nil {
			t.Fatalf("cl %v: %v\n%s", args, err, stderr)
		}
		return out
	}
	// Images in class folders, and their features as cl extract gives them.
	imgs := map[string]string{"a/img_rgb.jpg": "img_rgb.jpg", "b/img_grey.png": "img_grey.png", "a/img_palette.gif": "img_palette.gif"}
	for id, n := range imgs {
		b, err := os.ReadFile(filepath.Join("../testdata/tinyvit", n))
		if err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(filepath.Dir(p("imgs/"+id)), 0o755)
		os.WriteFile(p("imgs/"+id), b, 0o644)
	}
	run("extract", "--model", serveTiny, "--data", p("imgs"), "--out", p("extracted.safetensors"), "--threads", "1")
	ext := mustRead(t, p("extracted.safetensors"))

	srv := startServe(t, "--method", "simplecil", "--state", p("state"), "--insecure-no-auth")
	// The images, one multipart request, ids and classes as extract's.
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	var meta []map[string]string
	for i := 0; i < ext.N; i++ {
		meta = append(meta, map[string]string{"id": ext.IDs[i], "class": ext.Classes[ext.Labels[i]]})
	}
	js, _ := json.Marshal(meta)
	mw.WriteField("samples", string(js))
	for i := 0; i < ext.N; i++ {
		fw, _ := mw.CreateFormFile("image", ext.IDs[i])
		b, _ := os.ReadFile(p("imgs/" + ext.IDs[i]))
		fw.Write(b)
	}
	mw.Close()
	resp, err := http.Post(srv.url+"/v1/learn", mw.FormDataContentType(), &body)
	if err != nil {
		t.Fatal(err)
	}
	rb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("learn images: %d %s", resp.StatusCode, rb)
	}
	// Feature rows: two more samples of a third class.
	rows := []crashSample{{ID: "f1", Class: "c"}, {ID: "f2", Class: "c"}}
	for i := range rows {
		rows[i].Features = make([]float32, ext.D)
		for j := range rows[i].Features {
			rows[i].Features[j] = float32((i+1)*(j%7)) / 3
		}
	}
	if code, b := srv.post("/v1/learn", "", map[string]any{"samples": rows}); code != 200 {
		t.Fatalf("learn features: %d %s", code, b)
	}
	srv.cmd.Process.Signal(syscall.SIGTERM)
	<-srv.exited
	if code := srv.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("SIGTERM: exit %d\n%s", code, srv.log())
	}
	var sf struct{ Head, Samples string }
	b, err := os.ReadFile(p("state/state.json"))
	if err != nil {
		t.Fatal(err)
	}
	json.Unmarshal(b, &sf)
	served, samples := p("state/"+sf.Head), p("state/"+sf.Samples)
	copyFile := func(from, to string) {
		t.Helper()
		if err := os.WriteFile(to, fileBytes(t, from), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(served, p("served.safetensors"))
	run("fit", "--method", "simplecil", "--features", samples, "--head", p("fitted.safetensors"))
	ledger := func(path string) string { // id, class and hash of every entry
		t.Helper()
		_, info, err := heads.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		if info.Ledger == nil {
			t.Fatalf("%s has no ledger", path)
		}
		var sb strings.Builder
		for i := 0; i < info.Ledger.Len(); i++ {
			id, l, h := info.Ledger.Entry(i)
			fmt.Fprintf(&sb, "%s %s %x\n", id, info.Classes[l], h)
		}
		return sb.String()
	}
	if a, f := ledger(p("served.safetensors")), ledger(p("fitted.safetensors")); a != f || strings.Count(a, "\n") != ext.N+2 {
		t.Fatalf("the served head's ledger differs from cl fit's of its samples:\n%q\n%q", a, f)
	}

	// Repeats and shared samples are refused, on both heads alike.
	for _, h := range []string{"served", "fitted"} {
		before := fileBytes(t, p(h+".safetensors"))
		if _, _, err := runCLErr("fit", "--features", samples, "--head", p(h+".safetensors")); err == nil || !strings.Contains(err.Error(), "was already learned by the head") {
			t.Errorf("%s: fitting its samples again: %v", h, err)
		}
		if !bytes.Equal(before, fileBytes(t, p(h+".safetensors"))) {
			t.Errorf("%s: a refused fit changed the head", h)
		}
	}
	if _, _, err := runCLErr("merge", p("served.safetensors"), p("fitted.safetensors"), "--out", p("m.safetensors")); err == nil ||
		!strings.Contains(err.Error(), "both heads learned sample") {
		t.Errorf("merging the served head with the fitted one: %v", err)
	}

	// Forget the image rows, as cl extract computes them offline.
	for _, h := range []string{"served", "fitted"} {
		run("forget", "--head", p(h+".safetensors"), "--features", p("extracted.safetensors"))
		if _, _, err := runCLErr("forget", "--head", p(h+".safetensors"), "--features", p("extracted.safetensors")); err == nil || !strings.Contains(err.Error(), "never learned") {
			t.Errorf("%s: forgetting the images twice: %v", h, err)
		}
	}
	if a, f := ledger(p("served.safetensors")), ledger(p("fitted.safetensors")); a != f || strings.Count(a, "\n") != 2 {
		t.Fatalf("after forgetting the images, ledgers differ:\n%q\n%q", a, f)
	}
	pa := run("predict", "--head", p("served.safetensors"), "--features", samples, "--top", "1")
	pf := run("predict", "--head", p("fitted.safetensors"), "--features", samples, "--top", "1")
	if pa != pf {
		t.Errorf("after forgetting the images, the heads predict differently:\n%s\n%s", pa, pf)
	}
	// The images, learned offline, merge with what the server learned.
	run("fit", "--method", "simplecil", "--features", p("extracted.safetensors"), "--head", p("imgs.safetensors"))
	run("merge", p("served.safetensors"), p("imgs.safetensors"), "--out", p("merged.safetensors"))
	if n := strings.Count(ledger(p("merged.safetensors")), "\n"); n != ext.N+2 {
		t.Errorf("merged ledger has %d rows, want %d", n, ext.N+2)
	}
}
