// Package eth anchors the audit log's checkpoints on an Ethereum-compatible
// chain, through github.com/ethereum/go-ethereum: each checkpoint's root
// hash is recorded, per log origin and size, in the CheckpointAnchor
// contract (contract/CheckpointAnchor.sol, compiled by contract/generate.sh
// into the .abi and .bin embedded here). The contract refuses a second root
// for a size (a split view) and a size below the latest, so the chain holds
// one history of the log that anyone can read and compare with what the log
// serves.
package eth

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"math/big"
	"strings"

	"github.com/ethereum/go-ethereum/accounts/abi"
	bind "github.com/ethereum/go-ethereum/accounts/abi/bind/v2"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/audit/tlog"
)

var (
	//go:embed contract/CheckpointAnchor.abi
	abiJSON string
	//go:embed contract/CheckpointAnchor.bin
	binHex string

	contractABI = func() abi.ABI {
		a, err := abi.JSON(strings.NewReader(abiJSON))
		if err != nil {
			panic(err) // the embedded ABI is checked by the tests
		}
		return a
	}()
)

// Backend is what the anchor needs of a chain: an RPC client
// (ethclient.Client) or go-ethereum's simulated backend's client.
type Backend interface {
	bind.ContractBackend
	bind.DeployBackend
}

// Deploy deploys a CheckpointAnchor owned by key's address and waits until
// it is mined. On a real chain that can take a while; ctx bounds it.
func Deploy(ctx context.Context, b Backend, key *ecdsa.PrivateKey, chainID *big.Int) (common.Address, error) {
	code, err := hex.DecodeString(strings.TrimSpace(binHex))
	if err != nil {
		return common.Address{}, iotpay.Wrap(iotpay.EINTERNAL, "anchor: contract bytecode", err)
	}
	opts := bind.NewKeyedTransactor(key, chainID)
	opts.Context = ctx
	addr, tx, err := bind.DeployContract(opts, code, b, nil)
	if err != nil {
		return common.Address{}, iotpay.Wrap(iotpay.EUNAVAILABLE, "anchor: deploy", err)
	}
	if _, err := bind.WaitDeployed(ctx, b, tx.Hash()); err != nil {
		return common.Address{}, iotpay.Wrap(iotpay.EUNAVAILABLE, "anchor: deploy not mined", err)
	}
	return addr, nil
}

// Anchor records checkpoints of one log in a deployed contract.
type Anchor struct {
	b        Backend
	contract *bind.BoundContract
	opts     *bind.TransactOpts // nil: read only
}

// New binds the contract at addr. key (the contract's owner) may be nil for
// a reader, such as a verifier.
func New(b Backend, addr common.Address, key *ecdsa.PrivateKey, chainID *big.Int) *Anchor {
	a := &Anchor{b: b, contract: bind.NewBoundContract(addr, contractABI, b, b, b)}
	if key != nil {
		a.opts = bind.NewKeyedTransactor(key, chainID)
	}
	return a
}

// OriginHash is how the contract names a log: SHA-256 of its origin.
func OriginHash(origin string) [32]byte { return sha256.Sum256([]byte(origin)) }

// Anchor sends a transaction recording the checkpoint (its origin, size and
// root, and the hash of the signed note as served) and returns it without
// waiting for it to be mined; Mined waits. Anchoring a checkpoint already
// anchored is harmless. A different root already anchored for the size is a
// conflict (a split view): the chain refuses it before anything is sent.
func (a *Anchor) Anchor(ctx context.Context, signed []byte, cp tlog.Checkpoint) (*types.Transaction, error) {
	if a.opts == nil {
		return nil, iotpay.Errorf(iotpay.EINVALID, "anchor: read-only (no key)")
	}
	if len(cp.Hash) != 32 {
		return nil, iotpay.Errorf(iotpay.EINVALID, "anchor: root hash of %d bytes", len(cp.Hash))
	}
	opts := *a.opts
	opts.Context = ctx
	tx, err := a.contract.Transact(&opts, "anchor", OriginHash(cp.Origin), cp.Size, [32]byte(cp.Hash), sha256.Sum256(signed))
	if err != nil {
		return nil, revertError(err)
	}
	return tx, nil
}

// Mined waits until tx is mined and reports whether it succeeded.
func (a *Anchor) Mined(ctx context.Context, tx *types.Transaction) error {
	r, err := bind.WaitMined(ctx, a.b, tx.Hash())
	if err != nil {
		return iotpay.Wrap(iotpay.EUNAVAILABLE, "anchor: transaction not mined", err)
	}
	if r.Status != types.ReceiptStatusSuccessful {
		return iotpay.Errorf(iotpay.ECONFLICT, "anchor: transaction %s reverted", tx.Hash())
	}
	return nil
}

// RootOf returns the root anchored for origin at size, or nil if none is.
func (a *Anchor) RootOf(ctx context.Context, origin string, size uint64) ([]byte, error) {
	var out []any
	if err := a.contract.Call(&bind.CallOpts{Context: ctx}, &out, "rootOf", OriginHash(origin), size); err != nil {
		return nil, iotpay.Wrap(iotpay.EUNAVAILABLE, "anchor: read", err)
	}
	root, ok := out[0].([32]byte)
	if !ok {
		return nil, iotpay.Errorf(iotpay.EINTERNAL, "anchor: rootOf returned %T", out[0])
	}
	if root == ([32]byte{}) {
		return nil, nil
	}
	return root[:], nil
}

// LatestSize returns the largest size anchored for origin.
func (a *Anchor) LatestSize(ctx context.Context, origin string) (uint64, error) {
	var out []any
	if err := a.contract.Call(&bind.CallOpts{Context: ctx}, &out, "latestSize", OriginHash(origin)); err != nil {
		return 0, iotpay.Wrap(iotpay.EUNAVAILABLE, "anchor: read", err)
	}
	n, ok := out[0].(uint64)
	if !ok {
		return 0, iotpay.Errorf(iotpay.EINTERNAL, "anchor: latestSize returned %T", out[0])
	}
	return n, nil
}

// Verify checks that cp is anchored: the chain holds cp's root for its
// size. A missing anchor is not_found; another root, a split view, is a
// conflict.
func (a *Anchor) Verify(ctx context.Context, cp tlog.Checkpoint) error {
	root, err := a.RootOf(ctx, cp.Origin, cp.Size)
	switch {
	case err != nil:
		return err
	case root == nil:
		return iotpay.Errorf(iotpay.ENOTFOUND, "anchor: no root anchored for %s at size %d", cp.Origin, cp.Size)
	case string(root) != string(cp.Hash):
		return iotpay.Errorf(iotpay.ECONFLICT, "anchor: the chain holds another root for %s at size %d (split view)", cp.Origin, cp.Size)
	}
	return nil
}

// dataError is what go-ethereum's RPC errors carry for a revert: the
// revert data, hex.
type dataError interface {
	ErrorData() any
}

// revertError turns the contract's custom errors into typed errors.
func revertError(err error) error {
	var de dataError
	if errors.As(err, &de) {
		if s, ok := de.ErrorData().(string); ok {
			if data, derr := hex.DecodeString(strings.TrimPrefix(s, "0x")); derr == nil && len(data) >= 4 {
				for name, e := range contractABI.Errors {
					if [4]byte(data[:4]) == [4]byte(e.ID[:4]) {
						switch name {
						case "SplitView":
							return iotpay.Wrap(iotpay.ECONFLICT, "anchor: another root is anchored for this size (split view)", err)
						case "SizeDecreases":
							return iotpay.Wrap(iotpay.ECONFLICT, "anchor: a larger size is anchored already", err)
						case "NotOwner":
							return iotpay.Wrap(iotpay.EUNAUTHORIZED, "anchor: the key does not own the contract", err)
						case "EmptyRoot":
							return iotpay.Wrap(iotpay.EINVALID, "anchor: empty root", err)
						}
					}
				}
			}
		}
	}
	return iotpay.Wrap(iotpay.EUNAVAILABLE, "anchor: transaction", err)
}

// Name names the anchor in logs.
func (a *Anchor) Name() string { return "ethereum " + a.contract.Address().Hex() }

// Push implements audit.Anchor: it sends the checkpoint's transaction and
// returns once it is sent; it adds no signature to the checkpoint.
func (a *Anchor) Push(ctx context.Context, signed []byte, cp tlog.Checkpoint, _ func(uint64) ([][]byte, error)) ([]byte, error) {
	_, err := a.Anchor(ctx, signed, cp)
	return nil, err
}
