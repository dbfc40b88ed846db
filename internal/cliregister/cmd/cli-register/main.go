// Command cli-register replays the hermes CLI's registration (package
// cliregister) for the e2e suite, which copies it into the container:
//
//	cli-register [-no-skeleton] SCANDIR PROFILE...
package main

import (
	"os"

	"github.com/hermes-s6/hermes-s6/internal/cliregister"
)

func main() { os.Exit(cliregister.Main(os.Args[1:], os.Stdout)) }
