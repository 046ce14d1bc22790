package main

import (
	"io"

	"github.com/eventrt/eventrt/internal/cli"
)

func runCLI(cmd string, args []string, stdout, stderr io.Writer) int {
	switch cmd {
	case "check":
		return cli.Check(args, stdout, stderr)
	case "eval":
		return cli.Eval(args, stdout, stderr)
	default:
		return cli.Test(args, stdout, stderr)
	}
}
