// Command cl is continual learning on frozen pre-trained vision models.
// See the README for the two commands that set everything up.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/cl-dev/cl/cli"
)

func main() {
	selectBLAS()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args)
	stop()
	os.Exit(code)
}
