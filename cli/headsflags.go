package cli

// Helpers shared by the commands: reading feature files, the logger, class
// name lookups, usage errors. The --set flag is in setflag.go, method
// selection and option routing in methods.go, PILOT config files in
// pilotconfig.go.

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/cl-dev/cl/features"
	"github.com/cl-dev/cl/heads"
)

// readFeatures reads "F" or "F,G"; two files are joined row-wise by sample
// id (features.ConcatByID), as APER's two branches.
func readFeatures(flag, spec string) (*features.Set, error) {
	parts := strings.Split(spec, ",")
	if spec == "" || len(parts) > 2 {
		return nil, usageErrorf("--%s: want one feature file or two joined by a comma, got %q", flag, spec)
	}
	a, err := features.Read(strings.TrimSpace(parts[0]))
	if err != nil {
		return nil, fmt.Errorf("--%s: %w", flag, err)
	}
	if len(parts) == 1 {
		return a, nil
	}
	b, err := features.Read(strings.TrimSpace(parts[1]))
	if err != nil {
		return nil, fmt.Errorf("--%s: %w", flag, err)
	}
	s, err := features.ConcatByID(a, b)
	if err != nil {
		return nil, fmt.Errorf("--%s: joining %s and %s: %w", flag, parts[0], parts[1], err)
	}
	return s, nil
}

// logger returns the command's stderr logger.
func logger(c *cli.Context) *slog.Logger {
	return slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// onUsageError makes a command's flag-parsing errors usage errors (exit 2).
func onUsageError(c *cli.Context, err error, isSubcommand bool) error { return UsageError{err} }

// requireFlags returns a usage error naming the first missing flag (urfave's
// own Required check does not produce exit code 2).
func requireFlags(c *cli.Context, names ...string) error {
	for _, n := range names {
		if !c.IsSet(n) || c.String(n) == "" {
			return usageErrorf("flag --%s is required (see cl %s --help)", n, c.Command.Name)
		}
	}
	return nil
}

// scoredLabels returns, for each class of a feature file (index = its
// label), the label the head scores it as, or −1 when the head has no class
// of that name (headClasses is the head file's class list).
func scoredLabels(h heads.Head, headClasses, featureClasses []string) []int {
	scored := map[int]bool{}
	for _, l := range h.Classes() {
		scored[l] = true
	}
	index, _ := features.MapClasses(headClasses, featureClasses)
	out := make([]int, len(featureClasses))
	for c, k := range index {
		out[c] = -1
		if k < len(headClasses) && scored[k] {
			out[c] = k
		}
	}
	return out
}
