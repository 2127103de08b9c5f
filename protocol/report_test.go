package protocol

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func sampleReport(t *testing.T) *Report {
	train, test := clusters(6, 4, 8, 0), clusters(6, 2, 8, 0.01)
	cfg := Config{Classes: 6, Inc: 2, Seed: 1993, Shuffle: true}
	rep, err := Run(context.Background(), cfg, train, test, []Method{method(t, "ncm"), method(t, "simplecil")})
	if err != nil {
		t.Fatal(err)
	}
	rep.Joint, err = RunJoint(context.Background(), cfg, JointConfig{Iterations: 20}, train, test)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestReportOutputs(t *testing.T) {
	rep := sampleReport(t)
	var tab bytes.Buffer
	rep.WriteTable(&tab)
	for _, want := range []string{"B0 Inc2", "seed 1993", "ncm", "simplecil", "joint-logreg", "100.00"} {
		if !strings.Contains(tab.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, tab.String())
		}
	}
	var js bytes.Buffer
	rep.WriteJSON(&js)
	dec := json.NewDecoder(&js)
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		t.Fatal(err)
	}
	if dec.More() {
		t.Error("more than one JSON value")
	}
	dir := t.TempDir()
	if err := rep.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	csv, _ := os.ReadFile(filepath.Join(dir, "curve.csv"))
	lines := strings.Split(strings.TrimSpace(string(csv)), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "stage,classes,ncm,simplecil,joint-logreg") || !strings.HasPrefix(lines[3], "3,6,100,100,") {
		t.Errorf("curve.csv:\n%s", csv)
	}
	f, err := os.Open(filepath.Join(dir, "accuracy.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil || img.Bounds().Dx() < 300 {
		t.Errorf("accuracy.png: %v %v", err, img)
	}
	var back Report
	b, _ := os.ReadFile(filepath.Join(dir, "results.json"))
	if err := json.Unmarshal(b, &back); err != nil || len(back.Methods) != 2 || back.Joint == nil {
		t.Errorf("results.json: %v", err)
	}
}
