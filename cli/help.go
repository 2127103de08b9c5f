package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"reflect"
	"regexp"
	"strings"

	"github.com/urfave/cli/v2"
)

// The help and usage-error conventions of every command, applied to the
// whole command tree by finishCommands (so a new command gets them without
// doing anything):
//
//   - `cl help`, `cl help CMD` and `cl help CMD SUB` print the same help as
//     `cl CMD SUB --help`; an unknown command is a usage error (exit 2).
//   - Leaf commands list no `help` subcommand.
//   - Flag errors name the flag with two dashes and point to the command's
//     --help; they are usage errors (exit 2).
//   - Option lists show a placeholder saying what a flag takes (FILE, DIR,
//     N, …: the backquoted word of its usage, else N for numbers, DURATION,
//     or the flag's name in capitals), mark required flags "(required)" in
//     their usage, and leave out defaults that say nothing ("false", 0, "")
//     or that the usage text already explains.

func init() { cli.FlagStringer = flagString(cli.FlagStringer) }

// flagString wraps urfave's flag formatter (see the conventions above).
func flagString(orig cli.FlagStringFunc) cli.FlagStringFunc {
	return func(f cli.Flag) string {
		s := orig(f)
		left, right, ok := strings.Cut(s, "\t")
		if !ok {
			return s
		}
		if strings.Contains(left, " value") {
			left = strings.ReplaceAll(left, " value", " "+placeholder(f))
		}
		return left + "\t" + trimDefault(right)
	}
}

// defaultRE matches urfave's default suffix.
var defaultRE = regexp.MustCompile(` \(default: (.*)\)$`)

// trimDefault drops a "(default: …)" suffix that says nothing (false, 0, "")
// or that would contradict or repeat the usage text, which then explains
// the default itself.
func trimDefault(usage string) string {
	m := defaultRE.FindStringSubmatchIndex(usage)
	if m == nil {
		return usage
	}
	val, text := usage[m[2]:m[3]], usage[:m[0]]
	switch {
	case val == "false", val == "0", val == `""`, val == "0s":
		return text
	case strings.Contains(strings.ToLower(text), "default"), strings.Contains(text, "(0 = "), strings.Contains(text, "(0: "):
		return text
	}
	return usage
}

// placeholders are the value names of flags whose usage has no backquoted
// word, by flag name.
var placeholders = map[string]string{
	"set": "KEY=VALUE", "class": "NAME", "ort-lib": "FILE", "device": "DEVICE",
	"head": "FILE", "features": "FILE", "out": "FILE", "train": "FILE", "test": "FILE",
	"config": "FILE", "model": "FILE", "weights": "FILE", "data": "SPEC", "method": "METHOD",
}

// placeholder names the value a flag takes.
func placeholder(f cli.Flag) string {
	name := f.Names()[0]
	if p, ok := placeholders[name]; ok {
		return p
	}
	switch f.(type) {
	case *cli.IntFlag, *cli.Int64Flag, *cli.UintFlag, *cli.Uint64Flag:
		return "N"
	case *cli.Float64Flag:
		return "X"
	case *cli.DurationFlag:
		return "DURATION"
	}
	return strings.ToUpper(name)
}

// finishCommands applies the conventions to cmds and their subcommands;
// path is the command line that leads to them ("cl", "cl models").
func finishCommands(path string, cmds []*cli.Command) {
	for _, c := range cmds {
		full := path + " " + c.Name
		c.HelpName = full
		if path == "cl" {
			c.HelpName = c.Name // urfave prefixes the app's name to top-level commands
		}
		c.OnUsageError = flagErrorFunc(full)
		requireOurselves(full, c)
		if len(c.Subcommands) == 0 {
			c.HideHelpCommand = true
			continue
		}
		c.HideHelpCommand = true // `cl help CMD SUB` and `cl CMD SUB --help` instead
		if c.Action == nil {
			c.Action = groupAction(full)
		}
		finishCommands(full, c.Subcommands)
	}
}

// requireOurselves takes over urfave's check of flags declared Required:
// urfave's prints the whole help and fails with exit code 1; ours is a
// usage error naming the first missing flag (exit code 2). The flags' usage
// gets "(required)" when it does not say so.
func requireOurselves(full string, c *cli.Command) {
	var names []string
	for _, f := range c.Flags {
		rf, ok := f.(cli.RequiredFlag)
		if !ok || !rf.IsRequired() {
			continue
		}
		v := reflect.ValueOf(f)
		if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
			continue
		}
		req, usage := v.Elem().FieldByName("Required"), v.Elem().FieldByName("Usage")
		if !req.CanSet() || !usage.CanSet() || usage.Kind() != reflect.String {
			continue
		}
		req.SetBool(false)
		if !strings.Contains(usage.String(), "(required)") {
			usage.SetString(usage.String() + " (required)")
		}
		names = append(names, f.Names()[0])
	}
	if len(names) == 0 || c.Action == nil {
		return
	}
	action := c.Action
	c.Action = func(ctx *cli.Context) error {
		for _, n := range names {
			if !ctx.IsSet(n) {
				return usageErrorf("%s: flag --%s is required (see %s --help)", strings.TrimPrefix(full, "cl "), n, full)
			}
		}
		return action(ctx)
	}
}

// groupAction is the action of a command that only groups subcommands
// (`cl models`): its help without arguments, a usage error for an unknown
// subcommand.
func groupAction(full string) cli.ActionFunc {
	return func(c *cli.Context) error {
		if c.Args().Present() {
			return usageErrorf("%s: unknown command %q (see %s --help)", full, c.Args().First(), full)
		}
		return cli.ShowSubcommandHelp(c)
	}
}

// flagErrorFunc turns urfave's (Go flag's) parse errors into usage errors
// that spell flags with two dashes and point to full's --help.
func flagErrorFunc(full string) cli.OnUsageErrorFunc {
	return func(_ *cli.Context, err error, _ bool) error { return flagError(full, err) }
}

var (
	notDefinedRE = regexp.MustCompile(`^flag provided but not defined: -+(\S+)$`)
	needsArgRE   = regexp.MustCompile(`^flag needs an argument: -+(\S+)$`)
	invalidRE    = regexp.MustCompile(`^invalid value "(.*)" for flag -+(\S+): (.*)$`)
	oneDashRE    = regexp.MustCompile(`(^|[\s:(])-([A-Za-z][\w-]+)`)
)

// flagError rewrites one parse error of the command line full.
func flagError(full string, err error) error {
	see := fmt.Sprintf("(see %s --help)", full)
	msg := err.Error()
	full = strings.TrimPrefix(full, "cl ") // Main prints "cl: " before the error
	if m := notDefinedRE.FindStringSubmatch(msg); m != nil {
		return usageErrorf("%s: unknown flag --%s %s", full, m[1], see)
	}
	if m := needsArgRE.FindStringSubmatch(msg); m != nil {
		return usageErrorf("%s: --%s needs a value %s", full, m[1], see)
	}
	if m := invalidRE.FindStringSubmatch(msg); m != nil {
		why := m[3]
		if why == "parse error" {
			why = "not a valid value for it"
		}
		return usageErrorf("%s: --%s %q: %s %s", full, m[2], m[1], why, see)
	}
	if strings.Contains(msg, "--help") {
		return UsageError{err}
	}
	return usageErrorf("%s: %s %s", full, oneDashRE.ReplaceAllString(msg, "$1--$2"), see)
}

// aHead is "a ranpac head", "an lda head": the article as the method's
// name is spoken (acronyms letter by letter).
func aHead(method string) string {
	switch {
	case method == "lda", method == "ncm", strings.ContainsAny(method[:min(1, len(method))], "aeiou"):
		return "an " + method + " head"
	}
	return "a " + method + " head"
}

// dataSpecError makes the error of opening a --data spec a usage error
// (exit 2) when the spec itself is wrong — an unknown kind, an empty spec, a
// path that does not exist — and leaves failures of existing data (a
// corrupt file) plain errors (exit 1).
func dataSpecError(err error) error {
	msg := err.Error()
	if errors.Is(err, fs.ErrNotExist) || strings.Contains(msg, "unknown kind") || strings.Contains(msg, "--data is empty") {
		return UsageError{err}
	}
	return err
}

// aperNeedsTwo is the usage error of APER given one feature file (on which
// it would be SimpleCIL).
func aperNeedsTwo(flag string) error {
	return usageErrorf("aper needs two feature files joined by a comma, %s PLAIN.safetensors,ADAPTED.safetensors: "+
		"the frozen backbone's features and those of the backbone adapted on the first stage (cl tune, then cl extract "+
		"with the adapted model); on one file APER is SimpleCIL: use --method simplecil", flag)
}

// helpCommand is `cl help [COMMAND [SUBCOMMAND]]`.
var helpCommand = &cli.Command{
	Name:      "help",
	Usage:     "show the help of cl or of one command (cl help models cut)",
	ArgsUsage: "[COMMAND [SUBCOMMAND]]",
	Action: func(c *cli.Context) error {
		args := c.Args().Slice()
		if len(args) == 0 {
			return cli.ShowAppHelp(c)
		}
		cmds, path := c.App.Commands, "cl"
		var found *cli.Command
		for _, name := range args {
			found = nil
			for _, cmd := range cmds {
				if cmd.HasName(name) {
					found = cmd
					break
				}
			}
			if found == nil {
				return usageErrorf("help: %s has no command %q (see %s --help)", path, name, path)
			}
			cmds, path = found.Subcommands, path+" "+found.Name
		}
		return showHelp(c, found)
	},
}

// showHelp prints cmd's help as `cl … CMD --help` does.
func showHelp(c *cli.Context, cmd *cli.Command) error {
	if !hasHelpFlag(cmd) {
		cmd.Flags = append(cmd.Flags, cli.HelpFlag)
	}
	tmpl := cmd.CustomHelpTemplate
	if tmpl == "" {
		tmpl = cli.CommandHelpTemplate
		if len(cmd.Subcommands) > 0 {
			tmpl = cli.SubcommandHelpTemplate
		}
	}
	cli.HelpPrinter(c.App.Writer, tmpl, cmd)
	return nil
}

func hasHelpFlag(cmd *cli.Command) bool {
	for _, f := range cmd.Flags {
		if f == cli.HelpFlag {
			return true
		}
	}
	return false
}
