// Package ethtest runs go-ethereum's simulated chain for tests of the
// checkpoint anchor: funded keys, and a block mined every few milliseconds
// until the test ends, as a real chain produces them.
package ethtest

import (
	"crypto/ecdsa"
	"math/big"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient/simulated"
)

// ChainID is the simulated backend's chain id.
var ChainID = big.NewInt(1337)

// Chain starts a simulated chain with n funded keys, closed when the test
// ends.
func Chain(t testing.TB, n int) (*simulated.Backend, []*ecdsa.PrivateKey) {
	t.Helper()
	var keys []*ecdsa.PrivateKey
	alloc := types.GenesisAlloc{}
	for range n {
		k, err := crypto.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
		alloc[crypto.PubkeyToAddress(k.PublicKey)] = types.Account{Balance: new(big.Int).Lsh(big.NewInt(1), 100)}
	}
	b := simulated.NewBackend(alloc)
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				b.Commit()
			}
		}
	}()
	t.Cleanup(func() {
		close(done)
		<-stopped
		b.Close()
	})
	return b, keys
}
