package learners

import (
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/cl-dev/cl/tune/grad"
)

// TestDualPromptGolden: stage 1 (E-prompt 1, copied from E-prompt 0) of
// DualPrompt on the tiny ViT, two Adam steps, against
// testdata/prompts/make_goldens.py, with both prefix layouts: test-time
// matching exact; loss, gradients of G-prompt, E-prompts, keys and head,
// and the updates within 1e-4.
func TestDualPromptGolden(t *testing.T) {
	env := tinyEnv(t)
	g := readGolden(t, "dualprompt.safetensors")
	const tol = 1e-4
	for _, layout := range []string{LayoutKeyValue, LayoutPILOT} {
		t.Run(layout, func(t *testing.T) {
			g.t = t
			d, err := NewDualPrompt(env, map[string]string{"g-layers": "0", "e-layers": "1,2", "pool": "4", "layout": layout, "match": "all"})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			d.GPrompt = g.f32(layout + "/init/g-prompt")
			d.EPrompts = g.f32(layout + "/init/e-prompts")
			d.Keys = g.f32(layout + "/init/keys")
			d.HeadW = g.f32(layout + "/init/head.weight")
			d.HeadB = g.f32(layout + "/init/head.bias")
			if err := d.beginStage(1); err != nil {
				t.Fatal(err)
			}
			opt, err := d.newOptimizer()
			if err != nil {
				t.Fatal(err)
			}
			init := map[string][]float32{}
			for _, prm := range d.params() {
				init[prm.Name] = append([]float32(nil), prm.Data...)
			}
			mask := pClassMask(6, []int{2, 3})
			worst := 0.0
			for s := 0; s < 2; s++ {
				ss := strconv.Itoa(s)
				p := layout + "/" + ss + "/"
				x := g.f32("input/" + ss)
				labels := g.i64("labels/" + ss)
				q, err := d.pe.queryOf(x, len(labels))
				if err != nil {
					t.Fatal(err)
				}
				worst = math.Max(worst, g.check(p+"query", q, g.f64(p+"query"), tol))
				for i, m := range d.match(q, SelectPerSample) {
					if want := g.i64(p + "match")[i]; int64(m) != want {
						t.Fatalf("%smatch: image %d matches E-prompt %d, torch %d", p, i, m, want)
					}
				}
				r, err := d.step(opt, x, q, labels, mask, 1)
				if err != nil {
					t.Fatal(err)
				}
				worst = math.Max(worst, g.check(p+"loss", []float32{float32(r.Loss)}, g.f64(p+"loss"), tol))
				for _, name := range []string{"g-prompt", "e-prompts", "keys", grad.HeadWeightName, grad.HeadBiasName} {
					worst = math.Max(worst, g.check(p+"grad/"+name, r.Grads[name], g.f64(p+"grad/"+name), tol))
				}
				for _, prm := range d.params() {
					want := g.f64(p + "param/" + prm.Name)
					got := make([]float32, len(want))
					for i := range want {
						want[i] -= float64(init[prm.Name][i])
						got[i] = prm.Data[i] - init[prm.Name][i]
					}
					worst = math.Max(worst, g.check(p+"param/"+prm.Name+" − init", got, want, tol))
				}
			}
			t.Logf("%s: worst relative difference %.2g", layout, worst)
		})
	}
}

// TestDualPromptLayoutsDiffer: with a batch of more than one image, PILOT's
// layout gives the first half of the batch the key rows as keys and values
// and the second half the value rows (the reshape without permute).
func TestDualPromptLayoutsDiffer(t *testing.T) {
	env := tinyEnv(t)
	d, err := NewDualPrompt(env, map[string]string{"g-layers": "", "e-layers": "1", "pool": "2", "e-length": "1", "layout": LayoutPILOT})
	if err != nil {
		t.Fatal(err)
	}
	d.init(4)
	W := d.pe.w.Width
	p := d.compose([]int{0, 0, 0, 0})
	row := func(b, r int) []float32 { return p[(b*2+r)*W : (b*2+r+1)*W] }
	key, val := d.EPrompts[:W], d.EPrompts[W:2*W]
	for b, want := range [][2][]float32{{key, key}, {key, key}, {val, val}, {val, val}} {
		for r := 0; r < 2; r++ {
			if row(b, r)[0] != want[r][0] || row(b, r)[W-1] != want[r][W-1] {
				t.Fatalf("pilot layout: sample %d row %d is not the expected E-prompt row", b, r)
			}
		}
	}
	d.opt.Layout = LayoutKeyValue
	p = d.compose([]int{0, 0, 0, 0})
	for b := 0; b < 4; b++ {
		if row(b, 0)[0] != key[0] || row(b, 1)[0] != val[0] {
			t.Fatalf("key-value layout: sample %d does not get keys then values", b)
		}
	}
}

func TestDualPromptBadInput(t *testing.T) {
	env := tinyEnv(t)
	for _, c := range []struct {
		o    map[string]string
		want string
	}{
		{map[string]string{"g-length": "4"}, "differ"},
		{map[string]string{"e-layers": "2,9"}, "does not exist"},
		{map[string]string{"g-layers": "0,1", "e-layers": "1,2"}, "listed twice"},
		{map[string]string{"e-layers": ""}, "e-layers is empty"},
		{map[string]string{"layout": "timm"}, "one of key-value, pilot"},
	} {
		_, err := NewDualPrompt(env, c.o)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want one containing %q", c.o, err, c.want)
		}
	}
}
