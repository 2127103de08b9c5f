package protocol

import "testing"

func TestSplitNamesFollowTheSurvey(t *testing.T) {
	for _, c := range []struct {
		init, inc int
		want      string
	}{{0, 5, "B0 Inc5"}, {10, 10, "B0 Inc10"}, {50, 10, "B50 Inc10"}, {4, 3, "B4 Inc3"}} {
		r := &Report{Init: c.init, Inc: c.inc}
		if got := r.Split(); got != c.want {
			t.Errorf("init %d inc %d: %q, want %q", c.init, c.inc, got, c.want)
		}
	}
}
