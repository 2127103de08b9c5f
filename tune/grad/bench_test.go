//go:build cgo

package grad

import (
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/cl-dev/cl/models/ort"
	"github.com/cl-dev/cl/models/vit"
)

// vitTiny is the real ViT-Ti/16 checkpoint (see ../shared/data/README.md).
const vitTiny = "../../../shared/data/vit-tiny-augreg/model.safetensors"

// BenchmarkViTTiStep times one training-step graph (forward, loss and the
// gradients of the adapter, SSF or VPT-deep parameters and a cosine head)
// of ViT-Ti/16 at 224 against the forward pass of the same variant graph,
// run alternately; it reports ms/forward, ms/step and their ratio.
// Batch: $CL_BENCH_BATCH (default 32); threads: $CL_BENCH_THREADS (default 2).
// Skips when the checkpoint is absent: any timm ViT-Ti/16 safetensors
// (timm's vit_tiny_patch16_224.augreg_in21k_ft_in1k) at that path works.
func BenchmarkViTTiStep(b *testing.B) {
	if _, err := os.Stat(vitTiny); err != nil {
		b.Skipf("%s absent: put timm's vit_tiny_patch16_224 (augreg) model.safetensors there", vitTiny)
	}
	needORT(b)
	batch, threads := envInt("CL_BENCH_BATCH", 32), envInt("CL_BENCH_THREADS", 2)
	w, err := vit.Load(vitTiny, 3)
	if err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	img := make([]float32, batch*3*224*224)
	for i := range img {
		img[i] = r.Float32()
	}
	labels := make([]int64, batch)
	for i := range labels {
		labels[i] = int64(i % 10)
	}
	for _, v := range []vit.Variant{vit.Adapter, vit.SSF, vit.VPTDeep} {
		fwd, err := vit.Build(w, vit.Options{Variant: v})
		if err != nil {
			b.Fatal(err)
		}
		specs := vit.ParamSpecs(w.Config, mustNormalize(b, w.Config, vit.Options{Variant: v}))
		params := []ort.Tensor{}
		names := []string{}
		for _, s := range specs {
			shape := []int64{}
			for _, d := range s.Shape {
				shape = append(shape, int64(d))
			}
			names = append(names, s.Name)
			params = append(params, tensorOf(tFloat, shape, randn(r, numel(shape), 0.02, 0)))
		}
		b.Run(string(v), func(b *testing.B) {
			fs, err := ort.NewSession("fwd", marshal(b, fwd), append([]string{vit.InputName}, names...), []string{vit.OutputName}, ort.SessionOptions{Threads: threads})
			if err != nil {
				b.Fatal(err)
			}
			defer fs.Close()
			fin := append([]ort.Tensor{{Shape: []int64{int64(batch), 3, 224, 224}, F32: img}}, params...)
			obj := NewObjective(fwd)
			if err := obj.Classifier(ObjectiveSpec{Features: vit.OutputName, Classes: 10, Head: HeadCosine}); err != nil {
				b.Fatal(err)
			}
			train := append(append([]string{}, names...), HeadWeightName, HeadSigmaName)
			gm, err := Build(obj.Model(), Spec{Trainable: train, Loss: LossName, Keep: []string{LogitsName}})
			if err != nil {
				b.Fatal(err)
			}
			outs := []string{LossName}
			for _, t := range train {
				outs = append(outs, GradName(t))
			}
			// The training session's options are tune.Train's (memory pattern off).
			ss, err := ort.NewSession("step", marshal(b, gm), append([]string{vit.InputName, LabelsName}, train...), outs, ort.SessionOptions{Threads: threads, NoMemPattern: true})
			if err != nil {
				b.Fatal(err)
			}
			defer ss.Close()
			sin := append([]ort.Tensor{fin[0], {Shape: []int64{int64(batch)}, I64: labels}}, params...)
			sin = append(sin, tensorOf(tFloat, []int64{10, 192}, randn(r, 1920, 1, 0)), ort.Tensor{Shape: []int64{1}, F32: []float32{10}})
			run(b, fs, fin)
			run(b, ss, sin)
			// Alternate the two graphs so that load changes hit both alike.
			var tf, ts time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				run(b, fs, fin)
				t1 := time.Now()
				run(b, ss, sin)
				tf, ts = tf+t1.Sub(t0), ts+time.Since(t1)
			}
			b.ReportMetric(float64(tf.Milliseconds())/float64(b.N), "ms/forward")
			b.ReportMetric(float64(ts.Milliseconds())/float64(b.N), "ms/step")
			b.ReportMetric(float64(ts)/float64(tf), "step/forward")
		})
	}
}

func mustNormalize(b *testing.B, c vit.Config, o vit.Options) vit.Options {
	o, err := vit.NormalizedOptions(c, o)
	if err != nil {
		b.Fatal(err)
	}
	return o
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
