// Command fleet-reliability writes testing/RELIABILITY.md from the rows the
// fault tests of a `make test` run recorded.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/fleetops/fleet/testing/reliability"
)

func main() {
	in := flag.String("in", "", "the folder the tests recorded into ($"+reliability.EnvDir+")")
	out := flag.String("out", "testing/RELIABILITY.md", "the report")
	flag.Parse()
	rows, err := reliability.Read(*in)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fleet-reliability:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(*out, []byte(reliability.Render(rows)), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "fleet-reliability:", err)
		os.Exit(1)
	}
	fmt.Printf("fleet-reliability: %d rows recorded, %s written\n", len(rows), *out)
}
