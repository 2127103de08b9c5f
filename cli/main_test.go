package cli

import (
	"context"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"testing"

	"github.com/cl-dev/cl/internal/linalg"
	"github.com/cl-dev/cl/internal/openblas"
)

// asCL is the environment variable that makes the test binary run as the cl
// program (what cmd/cl's main does), so tests can start real cl processes
// — concurrent writers, Ctrl-C — without building the binary.
const asCL = "CL_TEST_RUN_AS_CL"

func TestMain(m *testing.M) {
	// The BLAS choice of cmd/cl.
	if !openblas.Use() {
		linalg.UsePureGo()
	}
	if os.Getenv(asCL) == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := Main(ctx, append([]string{"cl"}, os.Args[1:]...))
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// clProcess returns a cl process (this test binary run as cl) with args.
func clProcess(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), asCL+"=1")
	return cmd
}
