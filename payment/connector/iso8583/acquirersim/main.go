package acquirersim

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/payment/connector/iso8583"
)

// DefaultAddr is where the command listens by default: 8583, after the
// standard, on loopback only.
const DefaultAddr = "127.0.0.1:8583"

// Main runs the command "iotpay acquirer-sim": it starts a simulator,
// prints the address it listens on to stdout, logs each request to
// stderr and serves until ctx is cancelled.
//
//	iotpay acquirer-sim [--addr 127.0.0.1:8583] [--spec ascii|bcd]
//	                    [--framing binary2|ascii4] [--rules rules.json]
//
// The rules file is described at LoadRules; without one every request is
// approved.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("acquirer-sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", DefaultAddr, "`host:port` to listen on")
	specName := fs.String("spec", "ascii", "message layout: ascii (ISO 8583:1987, ASCII) or bcd (BCD numerics and lengths)")
	framing := fs.String("framing", "binary2", "length header: binary2 (2-byte big-endian) or ascii4 (4 decimal digits)")
	rulesFile := fs.String("rules", "", "JSON `file` of rules (default: approve everything)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: iotpay acquirer-sim [flags]\n\nRun an ISO 8583 acquirer simulator that answers by rules.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return iotpay.Errorf(iotpay.EINVALID, "acquirer-sim: unexpected argument %q", fs.Arg(0))
	}
	cfg := Config{Addr: *addr, Logger: slog.New(slog.NewTextHandler(stderr, nil))}
	switch *specName {
	case "ascii":
		cfg.Spec = iso8583.Spec87ASCII
	case "bcd":
		cfg.Spec = iso8583.Spec87BCD
	default:
		return iotpay.Errorf(iotpay.EINVALID, "acquirer-sim: --spec %q: want ascii or bcd", *specName)
	}
	f, err := iso8583.ParseFraming(*framing)
	if err != nil {
		return err
	}
	cfg.Framing = f
	if *rulesFile != "" {
		file, err := os.Open(*rulesFile)
		if err != nil {
			return iotpay.Wrap(iotpay.EINVALID, "acquirer-sim: cannot open the rules file", err)
		}
		cfg.Rules, err = LoadRules(file)
		file.Close()
		if err != nil {
			return err
		}
	}
	s, err := Start(cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "acquirer-sim listening on %s (spec %s, framing %s, %d rules)\n", s.Addr(), cfg.Spec.Name(), cfg.Framing, len(cfg.Rules))
	<-ctx.Done()
	return s.Close()
}
