package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// findChromium returns Debian's chromium (or another Chrome) or skips the
// test; under CI=true a missing browser fails it.
func findChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "no chromium on PATH: the web page test needs a headless browser (Debian: apt-get install -y chromium; scripts/test.sh installs it when root)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// TestWebPage drives the embedded page (GET /) in headless chromium against
// a real server with the tiny ViT backbone: it checks the heading, uploads
// an image and asserts the top-k table shows the server's own prediction,
// teaches a class from two images with the token, takes a screenshot that
// must not be blank and must show the heading bar with its text, then
// forgets the class with the page's button; after each step the API
// agrees.
func TestWebPage(t *testing.T) {
	chrome := findChromium(t)
	ts := startServer(t, t.TempDir(), Config{}, newHead(t, "simplecil"))
	imgs := tinyImages(t)
	body, ct := multipartBody(t, map[string]string{"samples": `[{"id":"a1","class":"cat"},{"id":"a2","class":"cat"},{"id":"a3","class":"dog"},{"id":"a4","class":"dog"}]`}, imgs[:4])
	must(t, ts.do("POST", "/v1/learn", ct, body, testToken), 200)
	abs := func(name string) string {
		p, err := filepath.Abs(filepath.Join(tinyDir, name))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	// The server's own answer for the image the page will upload.
	var want predictReply
	must(t, ts.do("POST", "/v1/predict?top=5", "image/bmp", imgs[4].data, ""), 200).json(t, &want)

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chrome), chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.WindowSize(1200, 900),
		// Chromium's synthetic camera, allowed without a prompt, for "Use the camera".
		chromedp.Flag("use-fake-device-for-media-stream", true), chromedp.Flag("use-fake-ui-for-media-stream", true))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	bctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	if err := chromedp.Do(bctx); err != nil { // starts the browser, on a context without a deadline
		t.Fatalf("starting %s: %v", chrome, err)
	}
	// Each step has a deadline as a guard against a hung browser only;
	// nothing is asserted about speed.
	step := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		ctx, cancel := context.WithTimeout(bctx, time.Minute)
		defer cancel()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	get := func(what string, a chromedp.Action[string]) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(bctx, time.Minute)
		defer cancel()
		v, err := chromedp.Run(ctx, a)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}

	step("load the page", chromedp.Navigate(ts.ts.URL+"/"), chromedp.WaitVisible(chromedp.ID("title")),
		chromedp.WaitVisible(chromedp.CSS(`#classes tr[data-cls="dog"]`)))
	if title := get("heading", chromedp.Text(chromedp.ID("title"))); title != "cl serve" {
		t.Errorf("heading %q", title)
	}
	step("predict an uploaded image", chromedp.SetUploadFiles(chromedp.ID("pick"), []string{abs(imgs[4].name)}),
		chromedp.WaitVisible(chromedp.CSS("#topk tr.pred")))
	ctx, cancel := context.WithTimeout(bctx, time.Minute)
	defer cancel()
	rows, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#topk tr.pred").length`))
	if err != nil {
		t.Fatal(err)
	}
	first := get("first prediction", chromedp.Text(chromedp.CSS("#topk tr.pred td")))
	if rows != len(want.Predictions[0].Top) || first != want.Predictions[0].Top[0].Class {
		t.Errorf("page shows %d rows, first %q; the API gives %+v", rows, first, want.Predictions[0].Top)
	}
	// The camera: a picture from chromium's synthetic camera is predicted too.
	step("predict a camera picture", chromedp.Evaluate[chromedp.Void](`document.getElementById("predictStatus").textContent = ""`),
		chromedp.Click(chromedp.ID("camera")), chromedp.WaitVisible(chromedp.ID("snap")))
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.getElementById("video").videoWidth > 0`)); err != nil {
		t.Fatalf("the camera stream did not start: %v", err)
	}
	step("take a picture", chromedp.Click(chromedp.ID("snap")))
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.getElementById("predictStatus").textContent.startsWith("model version")`)); err != nil {
		st := get("predict status", chromedp.Text(chromedp.ID("predictStatus")))
		t.Fatalf("no prediction of the camera picture (%v): status %q", err, st)
	}
	if n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#topk tr.pred").length`)); err != nil || n != 2 {
		t.Errorf("camera picture: %d top-k rows (%v), want 2", n, err)
	}
	step("teach a class", chromedp.SendKeys(chromedp.ID("token"), testToken), chromedp.SendKeys(chromedp.ID("className"), "zebra"),
		chromedp.SetUploadFiles(chromedp.ID("teachFiles"), []string{abs(imgs[5].name), abs(imgs[0].name)}),
		chromedp.Click(chromedp.ID("teach")), chromedp.WaitVisible(chromedp.CSS(`#classes tr[data-cls="zebra"]`)))
	if st := get("teach status", chromedp.Text(chromedp.ID("teachStatus"))); !strings.Contains(st, "learned 2 image(s) of zebra") {
		t.Errorf("teach status %q", st)
	}
	if n := classSamples(t, ts)["zebra"]; n != 2 {
		t.Errorf("after teaching, the server has %d zebra samples, want 2", n)
	}
	shot, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	checkScreenshot(t, shot)
	step("forget the class", chromedp.Click(chromedp.CSS(`#classes tr[data-cls="zebra"] button.forget`)),
		chromedp.WaitNotPresent(chromedp.CSS(`#classes tr[data-cls="zebra"]`)))
	if st := get("forget status", chromedp.Text(chromedp.ID("classStatus"))); !strings.Contains(st, "forgot zebra (2 samples)") {
		t.Errorf("forget status %q", st)
	}
	if _, ok := classSamples(t, ts)["zebra"]; ok {
		t.Error("zebra is still a class after the page forgot it")
	}
	// A wrong token is shown as the server's error, and nothing changes.
	step("teach with a wrong token", chromedp.SetValue(chromedp.ID("token"), "wrong-token-wrong-token"),
		chromedp.SetValue(chromedp.ID("className"), "yak"),
		chromedp.SetUploadFiles(chromedp.ID("teachFiles"), []string{abs(imgs[1].name)}),
		chromedp.Click(chromedp.ID("teach")))
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.getElementById("teachStatus").className === "err"`)); err != nil {
		t.Fatal(err)
	}
	if st := get("wrong-token status", chromedp.Text(chromedp.ID("teachStatus"))); !strings.Contains(st, "forbidden: the bearer token is wrong") {
		t.Errorf("wrong token status %q", st)
	}
	if _, ok := classSamples(t, ts)["yak"]; ok {
		t.Error("a wrong token taught a class")
	}
	if os.Getenv("CL_UI_SCREENSHOT") != "" {
		os.WriteFile(os.Getenv("CL_UI_SCREENSHOT"), shot, 0o644)
	}
}

// classSamples returns GET /v1/classes as class → samples.
func classSamples(t *testing.T, ts *testServer) map[string]int {
	t.Helper()
	var rep struct {
		Classes []classInfo `json:"classes"`
	}
	if err := json.Unmarshal(must(t, ts.get("/v1/classes"), 200).body, &rep); err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, c := range rep.Classes {
		out[c.Name] = c.Samples
	}
	return out
}

// checkScreenshot: the page rendered — the image is not uniform (luminance
// standard deviation), the header bar at the top has the page's header
// colour (#1f3a5f) over most of its width, and the heading's white text is
// drawn on it (bright pixels inside the bar, at its left).
func checkScreenshot(t *testing.T, shot []byte) {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	msg, problems := screenshotProblems(img)
	t.Log(msg)
	for _, p := range problems {
		t.Error(p)
	}
}

// screenshotProblems returns a summary of the checks and what failed.
func screenshotProblems(img image.Image) (string, []string) {
	b := img.Bounds()
	if b.Dx() < 400 || b.Dy() < 300 {
		return "", []string{fmt.Sprintf("screenshot is %v, want at least 400×300", b)}
	}
	lum := func(x, y int) (float64, [3]uint32) {
		r, g, bl, _ := img.At(x, y).RGBA()
		c := [3]uint32{r >> 8, g >> 8, bl >> 8}
		return 0.299*float64(c[0]) + 0.587*float64(c[1]) + 0.114*float64(c[2]), c
	}
	var s, ss, n float64
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			l, _ := lum(x, y)
			s, ss, n = s+l, ss+l*l, n+1
		}
	}
	sd := math.Sqrt(ss/n - (s/n)*(s/n))
	// The header: rows 2–40 of the image.
	var bar, text, tot int
	near := func(c [3]uint32) bool {
		d := func(a uint32, b int) int { return int(a) - b }
		return abs(d(c[0], 0x1f)) < 12 && abs(d(c[1], 0x3a)) < 12 && abs(d(c[2], 0x5f)) < 12
	}
	for y := b.Min.Y + 2; y < b.Min.Y+40; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			l, c := lum(x, y)
			tot++
			if near(c) {
				bar++
			}
			if x < b.Min.X+300 && l > 200 {
				text++
			}
		}
	}
	msg := fmt.Sprintf("screenshot %dx%d: luminance sd %.1f; header rows: %.0f%% header colour, %d bright text pixels at the left",
		b.Dx(), b.Dy(), sd, 100*float64(bar)/float64(tot), text)
	var problems []string
	if sd < 10 {
		problems = append(problems, fmt.Sprintf("the screenshot is nearly uniform (luminance sd %.1f): the page did not render", sd))
	}
	if float64(bar) < 0.6*float64(tot) {
		problems = append(problems, fmt.Sprintf("only %d of %d header pixels have the header colour: the heading bar is not rendered", bar, tot))
	}
	if text < 50 {
		problems = append(problems, fmt.Sprintf("only %d bright pixels in the heading area: the heading text is not rendered", text))
	}
	return msg, problems
}

// TestScreenshotCheck: the screenshot check flags a blank page, and a
// header bar without its heading text; it passes a bar with text.
func TestScreenshotCheck(t *testing.T) {
	bar := color.RGBA{0x1f, 0x3a, 0x5f, 255}
	mk := func(withBar, withText bool) image.Image {
		m := image.NewRGBA(image.Rect(0, 0, 800, 600))
		draw.Draw(m, m.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
		if withBar {
			draw.Draw(m, image.Rect(0, 0, 800, 80), image.NewUniform(bar), image.Point{}, draw.Src)
		}
		if withText {
			draw.Draw(m, image.Rect(24, 10, 150, 36), image.NewUniform(color.White), image.Point{}, draw.Src)
			for x := 24; x < 150; x += 6 { // strokes: not a uniform block
				draw.Draw(m, image.Rect(x, 10, x+2, 36), image.NewUniform(bar), image.Point{}, draw.Src)
			}
		}
		return m
	}
	if _, p := screenshotProblems(mk(false, false)); len(p) < 2 {
		t.Errorf("a blank page passed: %v", p)
	}
	if _, p := screenshotProblems(mk(true, false)); len(p) != 1 || !strings.Contains(p[0], "heading text") {
		t.Errorf("a bar without heading text: %v", p)
	}
	if _, p := screenshotProblems(mk(true, true)); len(p) != 0 {
		t.Errorf("a page with its heading: %v", p)
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

// TestWebPageServed: GET / serves the embedded page with its content
// security policy; it names no other origin (no build step, no external
// URLs); other paths stay 404 and other methods 405.
func TestWebPageServed(t *testing.T) {
	ts := startServer(t, t.TempDir(), Config{}, newHead(t, "simplecil"))
	r := must(t, ts.get("/"), 200)
	if ct := r.hdr.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("Content-Type %q", ct)
	}
	if csp := r.hdr.Get("Content-Security-Policy"); !strings.Contains(csp, "connect-src 'self'") || !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	if !bytes.Equal(r.body, uiPage) || !bytes.Contains(r.body, []byte(`<h1 id="title">cl serve</h1>`)) {
		t.Error("GET / is not the embedded page")
	}
	for _, ext := range []string{"http:", "https:", `src="//`, `href="//`, "@import"} {
		if bytes.Contains(r.body, []byte(ext)) {
			t.Errorf("the page refers to another origin (%q)", ext)
		}
	}
	if r := ts.get("/index.html"); r.code != 404 || r.errCode() != "not_found" {
		t.Errorf("GET /index.html: %d %s", r.code, r.body)
	}
	if r := ts.do("POST", "/", "text/plain", []byte("x"), ""); r.code != 405 {
		t.Errorf("POST /: %d %s", r.code, r.body)
	}
}
