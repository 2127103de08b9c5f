package cli

import (
	"errors"
	"flag"
	"io"

	"github.com/urfave/cli/v2"
)

// modelsCommand is `cl models`. It is a package-level variable (initialised
// before any init function runs), so subcommand files may register from
// their init in any order.
var modelsCommand = &cli.Command{
	Name:  "models",
	Usage: "inspect and prepare ONNX backbones (inspect, cut, …)",
	Description: "A backbone is an ONNX model with one float32 [N,3,S,S] image input, one float32 [N,D] feature\n" +
		"output and a manifest (metadata \"cl.manifest\") saying how images are preprocessed. See docs/MODELS.md.",
}

// registerModelsSubcommand adds a `cl models <name>` subcommand; call it from
// the init function of the file that defines the subcommand.
func registerModelsSubcommand(c *cli.Command) {
	modelsCommand.Subcommands = append(modelsCommand.Subcommands, c)
}

func init() { register(modelsCommand) }

// parseAnywhere lets a command take its flags before or after its positional
// arguments (`cl models cut IN.onnx --tensor T --out O`), which urfave/cli v2
// does not do by itself: declare the command with SkipFlagParsing: true and
// call parseAnywhere first in its Action. It returns the context to read
// flags and arguments from, and help = true when --help was given (the help
// has then been printed). Missing required flags and unknown flags are usage
// errors.
func parseAnywhere(c *cli.Context, required ...string) (ctx *cli.Context, help bool, err error) {
	set := flag.NewFlagSet(c.Command.Name, flag.ContinueOnError)
	set.SetOutput(io.Discard)
	for _, f := range c.Command.Flags {
		if err := f.Apply(set); err != nil {
			return nil, false, err
		}
	}
	args := c.Args().Slice()
	var tail []string
	for i, a := range args {
		if a == "--" {
			args, tail = args[:i], args[i+1:]
			break
		}
	}
	var pos []string
	for {
		if err := set.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, true, cli.ShowCommandHelp(c.Lineage()[1], c.Command.Name)
			}
			return nil, false, flagError(c.Command.HelpName, err)
		}
		args = set.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	if err := set.Parse(append([]string{"--"}, append(pos, tail...)...)); err != nil {
		return nil, false, err
	}
	ctx = cli.NewContext(c.App, set, c.Lineage()[1])
	ctx.Command = c.Command
	if ctx.Bool("help") {
		return nil, true, cli.ShowCommandHelp(c.Lineage()[1], c.Command.Name)
	}
	for _, name := range required {
		if !ctx.IsSet(name) {
			return nil, false, usageErrorf("%s: flag --%s is required (see %s --help)", c.Command.HelpName, name, c.Command.HelpName)
		}
	}
	return ctx, false, nil
}
