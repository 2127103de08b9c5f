package models

import "testing"

// The demo and the tests rely on the shipped MobileNetV2 being the ONNX Model
// Zoo file documented in testdata/mobilenetv2/README.md.
func TestShippedMobileNetIsTheModelZooFile(t *testing.T) {
	got, err := FileSHA256(needMobileNet(t))
	if err != nil {
		t.Fatal(err)
	}
	const want = "83530ad811bc31d2b60a5599a21265a5057608c9b044b4ee758cc22f2309f54f"
	if got != want {
		t.Fatalf("sha256 %s, want %s", got, want)
	}
}
