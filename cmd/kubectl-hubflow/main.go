// Command kubectl-hubflow is a kubectl plugin that shows hubflow's flows:
// `kubectl hubflow graph` draws producers -> Topics -> consumers, and
// `kubectl hubflow status` lists what is not Ready, consumer lag and
// credentials expiry. kubectl finds it when the binary is on PATH.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"

	"github.com/spf13/pflag"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case errors.Is(err, pflag.ErrHelp):
	case err != nil:
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}
