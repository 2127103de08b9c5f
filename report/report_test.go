package report

import (
	"bytes"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cl-dev/cl/protocol"
)

// handReport is a 3-stage run (2 test rows per stage) whose metrics follow
// from counts by hand: "perfect" is always right; "forgets" is right on the
// newest stage only, so its curve is 100, 50, 33.33…; "joint" is the upper
// bound.
func handReport() *protocol.Report {
	total := []int{2, 2, 2}
	perfect := [][]int{{2, 2, 2}, {0, 2, 2}, {0, 0, 2}}
	forgets := [][]int{{2, 0, 0}, {0, 2, 0}, {0, 0, 2}}
	return &protocol.Report{
		ClassOrder: []int{4, 0, 5, 1, 3, 2}, Init: 2, Inc: 2, Seed: 1993, Shuffle: true,
		Increments: []int{2, 2, 2}, TrainRows: 60, TestRows: 6,
		Methods: []protocol.MethodResult{
			{Method: "perfect", Metrics: protocol.ComputeMetrics(perfect, total), Seconds: 1.25},
			{Method: "forgets", Metrics: protocol.ComputeMetrics(forgets, total), Seconds: 0.5},
			{Method: "joint", Metrics: protocol.ComputeMetrics(perfect, total), Seconds: 3, UpperBound: true},
		},
	}
}

func TestSplitNamesFollowTheSurvey(t *testing.T) {
	for _, c := range []struct {
		init, inc int
		want      string
	}{{0, 5, "B0 Inc5"}, {10, 10, "B0 Inc10"}, {50, 10, "B50 Inc10"}, {4, 3, "B4 Inc3"}} {
		if got := Split(c.init, c.inc); got != c.want {
			t.Errorf("init %d inc %d: %q, want %q", c.init, c.inc, got, c.want)
		}
	}
}

// TestTable: the title counts stages and classes (singular for one), the
// numbers are the metrics with two decimals, and the bound is marked.
func TestTable(t *testing.T) {
	var b bytes.Buffer
	if err := Table(&b, handReport()); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	if len(lines) != 5 {
		t.Fatalf("table has %d lines:\n%s", len(lines), b.String())
	}
	if want := "B0 Inc2, 3 stages, 6 classes (seed 1993), 60 train / 6 test rows"; lines[0] != want {
		t.Errorf("title %q, want %q", lines[0], want)
	}
	// forgets: Ā = (100 + 50 + 33.33)/3 = 61.11, A_B = 33.33, forgetting =
	// mean(100 − 0, 100 − 0) = 100.
	if f := strings.Fields(lines[3]); strings.Join(f, " ") != "forgets 61.11 33.33 100.00 0.5" {
		t.Errorf("forgets row %q", lines[3])
	}
	if !strings.Contains(lines[4], "joint (joint upper bound)") || !strings.Contains(lines[2], "perfect") {
		t.Errorf("rows:\n%s", b.String())
	}
	one := &protocol.Report{ClassOrder: []int{0}, Inc: 1, Increments: []int{1},
		Methods: []protocol.MethodResult{{Method: "m", Metrics: protocol.ComputeMetrics([][]int{{1}}, []int{1})}}}
	b.Reset()
	Table(&b, one)
	if !strings.HasPrefix(b.String(), "B0 Inc1, 1 stage, 1 class (no shuffle)") {
		t.Errorf("one-stage title: %q", b.String())
	}
}

// TestCSV: one row per stage, one unrounded column per method.
func TestCSV(t *testing.T) {
	var b bytes.Buffer
	if err := CSV(&b, handReport()); err != nil {
		t.Fatal(err)
	}
	want := "stage,classes,perfect,forgets,joint\n1,2,100,100,100\n2,4,100,50,100\n3,6,100,33.333333333333336,100\n"
	if b.String() != want {
		t.Errorf("csv:\n%s\nwant:\n%s", b.String(), want)
	}
	bad := handReport()
	bad.Methods[1].Curve = bad.Methods[1].Curve[:2]
	if err := CSV(&bytes.Buffer{}, bad); err == nil || !strings.Contains(err.Error(), "forgets") {
		t.Errorf("short curve: %v", err)
	}
}

// TestWriteDir: the three files, each complete: one JSON object that reads
// back to the same methods, the CSV, a PNG image.
func TestWriteDir(t *testing.T) {
	rep := handReport()
	dir := t.TempDir()
	if err := WriteDir(dir, rep); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	var back protocol.Report
	if err := dec.Decode(&back); err != nil {
		t.Fatal(err)
	}
	if dec.More() {
		t.Error("more than one JSON value")
	}
	if len(back.Methods) != 3 || !back.Methods[2].UpperBound || back.Methods[1].LastAccuracy != rep.Methods[1].LastAccuracy {
		t.Errorf("results.json reads back as %+v", back.Methods)
	}
	var js bytes.Buffer
	JSON(&js, rep)
	if !bytes.Equal(js.Bytes(), b) {
		t.Error("results.json differs from JSON")
	}
	csv, _ := os.ReadFile(filepath.Join(dir, "curve.csv"))
	if !strings.HasPrefix(string(csv), "stage,classes,perfect,forgets,joint\n") {
		t.Errorf("curve.csv:\n%s", csv)
	}
	f, err := os.Open(filepath.Join(dir, "accuracy.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if w := img.Bounds().Dx(); w < 300 {
		t.Errorf("accuracy.png is %d pixels wide", w)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 3 {
		t.Errorf("%d files in the folder, want 3 (no temporary files left)", len(entries))
	}
}
