package cli

import (
	"flag"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
)

// setValue collects repeated `--set key=value` flags in order. Values may
// contain commas (it is not a comma-split slice flag).
type setValue struct{ pairs [][2]string }

func (s *setValue) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	k = strings.TrimSpace(k)
	if !ok || k == "" {
		return fmt.Errorf("want key=value, got %q", v)
	}
	s.pairs = append(s.pairs, [2]string{k, strings.TrimSpace(val)})
	return nil
}

func (s *setValue) String() string {
	if s == nil {
		return ""
	}
	var parts []string
	for _, p := range s.pairs {
		parts = append(parts, p[0]+"="+p[1])
	}
	return strings.Join(parts, " ")
}

// freshGeneric is a GenericFlag whose value starts empty at every parse:
// command definitions are package-level and the app may run more than once
// in a process (tests), so a shared accumulating value would leak between
// runs.
type freshGeneric struct {
	cli.GenericFlag
	fresh func() cli.Generic
}

// Apply installs a new empty value, then registers the flag.
func (f *freshGeneric) Apply(set *flag.FlagSet) error {
	f.Value = f.fresh()
	return f.GenericFlag.Apply(set)
}

// setFlag is the shared `--set key=value` flag (repeatable).
func setFlag(usage string) cli.Flag {
	return &freshGeneric{cli.GenericFlag{Name: "set", Usage: usage}, func() cli.Generic { return &setValue{} }}
}

// setPairs returns the --set pairs of c in command-line order.
func setPairs(c *cli.Context) [][2]string {
	if v, ok := c.Generic("set").(*setValue); ok && v != nil {
		return v.pairs
	}
	return nil
}
