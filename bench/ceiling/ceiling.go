// Package ceiling measures the crypto-only ceiling of a payment (issue 8):
// the rate at which the project's own code can do the four signature steps
// of one payment — the device signs a request, the platform parses and
// verifies it, the platform signs the receipt, the device verifies the
// receipt — on all cores, per suite, with no store, network or rules.
//
// The end-to-end rate through iotpayd is judged against this ceiling
// measured in the same run.
package ceiling

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/wire"
)

// Bounds and defaults of a run.
const (
	DurationDefault = time.Second
	DurationMax     = 10 * time.Minute
	WorkersMax      = 1024
)

// Config is one run: a suite, how long, and how many workers.
type Config struct {
	Suite    string        // wire.SuiteIntl ("intl") or wire.SuiteGM ("gm")
	Duration time.Duration // 0: DurationDefault
	Workers  int           // 0: GOMAXPROCS
}

// Result is what a run measured. NsPerOp is wall-clock time over all
// operations, as b.RunParallel reports it: 1e9 / PerSec.
type Result struct {
	Suite    string
	Ops      int64 // payments whose four steps all succeeded
	Failures int64 // payments with a failed step; Run returns an error if any
	Seconds  float64
	PerSec   float64
	Workers  int
	NsPerOp  float64
}

// Run makes one device per worker and has each pay, as fast as it can, for
// cfg.Duration or until ctx is done. Keys and certificates are made before
// the clock starts. Any failed payment is an error; a ctx done early
// returns the figures so far with ctx's error.
func Run(ctx context.Context, cfg Config) (Result, error) {
	suite, err := wire.SuiteByName(cfg.Suite)
	if err != nil {
		return Result{}, err
	}
	if cfg.Duration == 0 {
		cfg.Duration = DurationDefault
	}
	if cfg.Workers == 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	if cfg.Duration < 0 || cfg.Duration > DurationMax {
		return Result{}, iotpay.Errorf(iotpay.EINVALID, "duration %v outside (0, %v]", cfg.Duration, DurationMax)
	}
	if cfg.Workers < 0 || cfg.Workers > WorkersMax {
		return Result{}, iotpay.Errorf(iotpay.EINVALID, "workers %d outside [1, %d]", cfg.Workers, WorkersMax)
	}
	plat, err := newPlatform(suite)
	if err != nil {
		return Result{}, err
	}
	workers := make([]*worker, cfg.Workers)
	for i := range workers {
		if workers[i], err = plat.newWorker(i); err != nil {
			return Result{}, err
		}
	}

	var (
		stop     atomic.Bool
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	ops := make([]int64, len(workers))
	fails := make([]int64, len(workers))
	start := time.Now()
	for i, w := range workers {
		wg.Go(func() {
			for !stop.Load() {
				if err := w.pay(); err != nil {
					fails[i]++
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					continue
				}
				ops[i]++
			}
		})
	}
	timer := time.NewTimer(cfg.Duration)
	select {
	case <-timer.C:
	case <-ctx.Done():
		timer.Stop()
	}
	stop.Store(true)
	wg.Wait()
	elapsed := time.Since(start)

	res := Result{Suite: suite.Name(), Seconds: elapsed.Seconds(), Workers: len(workers)}
	for i := range workers {
		res.Ops += ops[i]
		res.Failures += fails[i]
	}
	if res.Ops > 0 {
		res.PerSec = float64(res.Ops) / res.Seconds
		res.NsPerOp = float64(elapsed.Nanoseconds()) / float64(res.Ops)
	}
	switch {
	case res.Failures > 0:
		return res, fmt.Errorf("ceiling: %d of %d payments failed, the first: %w", res.Failures, res.Ops+res.Failures, firstErr)
	case ctx.Err() != nil:
		return res, ctx.Err()
	case res.Ops == 0:
		return res, errors.New("ceiling: no payment completed")
	}
	return res, nil
}
