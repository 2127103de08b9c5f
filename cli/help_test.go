package cli

import (
	"bytes"
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// commandPaths lists every command of the app as its words ("fit",
// "models cut"), parents before their subcommands; help itself excluded.
func commandPaths(prefix []string, cmds []*cli.Command) [][]string {
	var out [][]string
	for _, c := range cmds {
		if c.Name == "help" {
			continue
		}
		p := append(append([]string(nil), prefix...), c.Name)
		out = append(out, p)
		out = append(out, commandPaths(p, c.Subcommands)...)
	}
	return out
}

// run runs cl with args and returns stdout (help goes there), stderr and
// the exit code Main would return.
func run(args ...string) (string, string, int) {
	var out, errb bytes.Buffer
	err := NewApp(&out, &errb).Run(append([]string{"cl"}, args...))
	if err != nil {
		errb.WriteString(err.Error())
	}
	return out.String(), errb.String(), exitCode(err)
}

var (
	valuePlaceholder = regexp.MustCompile(`--[\w-]+ value\b`)
	noiseDefault     = regexp.MustCompile(`\(default: (false|0|""|0s)\)`)
	requiredErr      = regexp.MustCompile(`flag --([\w-]+) is required`)
)

// TestEveryCommandsHelp walks every command: `cl CMD --help` and `cl help
// CMD` print the same help (exit 0); option lists use placeholders that
// say what a flag takes (never "value"), show no empty or contradictory
// defaults, no stray backquote, no `help` subcommand on leaf commands; and
// every flag that running the command without it reports as required is
// marked "(required)" in the help.
func TestEveryCommandsHelp(t *testing.T) {
	paths := commandPaths(nil, NewApp(nil, nil).Commands)
	t.Chdir(t.TempDir()) // commands run with placeholder values write nothing here
	if len(paths) < 10 {
		t.Fatalf("only %d commands: %v", len(paths), paths)
	}
	for _, p := range paths {
		name := strings.Join(p, " ")
		help, stderr, code := run(append(p, "--help")...)
		if code != 0 || !strings.HasPrefix(help, "NAME:\n   cl "+name+" - ") {
			t.Errorf("cl %s --help: exit %d, stderr %q, help:\n%s", name, code, stderr, help)
			continue
		}
		if h2, _, code := run(append([]string{"help"}, p...)...); code != 0 || h2 != help {
			t.Errorf("cl help %s differs from cl %s --help (exit %d):\n%s", name, name, code, h2)
		}
		var leaf bool
		for _, c := range commandByPath(p) {
			leaf = len(c.Subcommands) == 0
		}
		if leaf && strings.Contains(help, "COMMANDS:") {
			t.Errorf("cl %s is a leaf command but lists subcommands:\n%s", name, help)
		}
		for _, line := range strings.Split(help, "\n") {
			switch {
			case valuePlaceholder.MatchString(line):
				t.Errorf("cl %s: placeholder \"value\" says nothing: %q", name, strings.TrimSpace(line))
			case noiseDefault.MatchString(line):
				t.Errorf("cl %s: empty default shown: %q", name, strings.TrimSpace(line))
			case strings.Count(strings.ToLower(line), "default") > 1:
				t.Errorf("cl %s: two defaults on one line: %q", name, strings.TrimSpace(line))
			case strings.Contains(line, "`"):
				t.Errorf("cl %s: stray backquote (garbled placeholder): %q", name, strings.TrimSpace(line))
			}
		}
		// Required flags: run without them, one at a time.
		args := append([]string(nil), p...)
		for range 12 {
			_, stderr, code := run(args...)
			m := requiredErr.FindStringSubmatch(stderr)
			if m == nil {
				break
			}
			if code != 2 {
				t.Errorf("cl %s: missing --%s exits %d, want 2", name, m[1], code)
			}
			if line := flagLine(help, m[1]); !strings.Contains(line, "required") {
				t.Errorf("cl %s: --%s is required but its help does not say so: %q", name, m[1], line)
			}
			args = append(args, "--"+m[1], "x")
		}
	}
}

// commandByPath returns the commands along p.
func commandByPath(p []string) []*cli.Command {
	var out []*cli.Command
	cmds := NewApp(nil, nil).Commands
	for _, w := range p {
		for _, c := range cmds {
			if c.Name == w {
				out = append(out, c)
				cmds = c.Subcommands
				break
			}
		}
	}
	return out
}

// flagLine is the help line of --name (with its continuation lines).
func flagLine(help, name string) string {
	lines := strings.Split(help, "\n")
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "--"+name+" ") || strings.TrimSpace(l) == "--"+name {
			out := l
			for j := i + 1; j < len(lines) && strings.HasPrefix(lines[j], "      ") && !strings.HasPrefix(strings.TrimSpace(lines[j]), "--"); j++ {
				out += " " + strings.TrimSpace(lines[j])
			}
			return out
		}
	}
	return ""
}

// TestUsageErrorsExitTwo: unknown commands and flags, missing values and
// unknown help topics are usage errors (exit 2) that spell flags with two
// dashes and point to --help; `cl help` works.
func TestUsageErrorsExitTwo(t *testing.T) {
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"nosuch"}, []string{`unknown command "nosuch"`, "cl --help"}},
		{[]string{"models", "nosuch"}, []string{`unknown command "nosuch"`, "cl models --help"}},
		{[]string{"help", "nosuch"}, []string{`no command "nosuch"`}},
		{[]string{"help", "models", "nosuch"}, []string{`no command "nosuch"`}},
		{[]string{"fit", "--nosuch"}, []string{"unknown flag --nosuch", "cl fit --help"}},
		{[]string{"extract", "--dta", "x"}, []string{"unknown flag --dta", "cl extract --help"}},
		{[]string{"extract", "--model", "m.onnx", "--data", "cifar100x:/tmp", "--out", "o"}, []string{`unknown kind "cifar100x"`}},
		{[]string{"extract", "--model", "m.onnx", "--data", "/no/such/folder", "--out", "o"}, []string{"/no/such/folder"}},
		{[]string{"fit", "--features"}, []string{"--features needs a value", "cl fit --help"}},
		{[]string{"predict", "--top", "x"}, []string{`--top "x"`, "cl predict --help"}},
		{[]string{"models", "cut", "--nosuch"}, []string{"unknown flag --nosuch", "cl models cut --help"}},
		{[]string{"--nosuch"}, []string{"unknown flag --nosuch", "cl --help"}},
	} {
		_, stderr, code := run(c.args...)
		if code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", c.args, code, stderr)
		}
		for _, w := range c.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("%v: %q lacks %q", c.args, stderr, w)
			}
		}
		if regexp.MustCompile(`(^|\s)-[a-z]`).MatchString(stderr) {
			t.Errorf("%v: a flag with one dash: %q", c.args, stderr)
		}
	}
	for _, args := range [][]string{{"help"}, {}, {"--help"}, {"-h"}, {"models"}, {"models", "--help"}, {"help", "models"}, {"help", "models", "cut"}} {
		out, stderr, code := run(args...)
		if code != 0 || !strings.HasPrefix(out, "NAME:") {
			t.Errorf("%v: exit %d, %q\n%s", args, code, stderr, out)
		}
	}
	if exitCode(errors.New("x")) != 1 || exitCode(UsageError{errors.New("x")}) != 2 || exitCode(nil) != 0 {
		t.Error("exitCode")
	}
}

// TestArticles: the article follows how the method's name is spoken.
func TestArticles(t *testing.T) {
	for m, want := range map[string]string{"lda": "an lda head", "ncm": "an ncm head", "aper": "an aper head",
		"ranpac": "a ranpac head", "simplecil": "a simplecil head", "fecam": "a fecam head", "joint": "a joint head"} {
		if got := aHead(m); got != want {
			t.Errorf("%s: %q, want %q", m, got, want)
		}
	}
}
