// Command herald is the Herald notification sidecar. See `herald --help`.
package main

import (
	"context"
	"os"

	"github.com/heraldhq/herald/sidecar/cli"
)

func main() {
	// The only place that hands os.Stdout to anyone: in plugin mode go-plugin
	// owns it for the handshake, and nothing else may write there.
	os.Exit(cli.Run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}
