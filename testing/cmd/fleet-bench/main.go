// Command fleet-bench runs `make bench`: fleet against ansible-playbook
// (tuned and default) and parallel OpenSSH on the same simulated hosts,
// alternating runs, and the share of a full `fleet apply` spent outside
// kubeadm and kubectl. It writes RESULTS.md and the raw numbers as CSV, and
// exits 1 when a target of the benchmark issue is missed.
//
//	fleet-bench compare -sizes 10,50 -runs 5 -out testing/bench
//	fleet-bench overhead -layer DIR   (only the apply-overhead section, printed)
//	fleet-bench prepare -layer DIR    (only the prepare-20-bare-hosts section, printed)
//	fleet-bench scale -workers 100 -layer DIR -fleet bin/fleet   (only the apply-at-scale section)
//	fleet-bench workload -i inventory.yaml -payload FILE   (one fleet run; used by compare)
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: fleet-bench compare|workload [flags]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var err error
	switch os.Args[1] {
	case "compare":
		err = compare(ctx, os.Args[2:])
	case "prepare":
		err = prepareOnly(ctx, os.Args[2:])
	case "scale":
		err = scaleOnly(ctx, os.Args[2:])
	case "overhead":
		err = overheadOnly(ctx, os.Args[2:])
	case "workload":
		err = workload(ctx, os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "fleet-bench:", err)
		os.Exit(1)
	}
}
