package tlog

import (
	"context"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/iotpay/iotpay"
)

// RootHash computes the root of the tree of size leaves from its tiles.
func RootHash(ctx context.Context, r TileReader, size uint64) ([]byte, error) {
	if err := checkSize(size); err != nil {
		return nil, err
	}
	if size == 0 {
		return EmptyRoot(), nil
	}
	in, err := ResumeIntegrator(ctx, r, size)
	if err != nil {
		return nil, err
	}
	return in.Root(), nil
}

// InclusionProof returns the RFC 6962 inclusion proof of leaf index in the
// tree of size leaves, read from its tiles.
func InclusionProof(ctx context.Context, r TileReader, index, size uint64) ([][]byte, error) {
	if err := checkSize(size); err != nil {
		return nil, err
	}
	if index >= size {
		return nil, iotpay.Errorf(iotpay.EINVALID, "tlog: leaf %d is not in a tree of %d leaves", index, size)
	}
	nodes, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, iotpay.Wrap(iotpay.EINVALID, "tlog: inclusion proof", err)
	}
	return fetch(ctx, r, size, nodes)
}

// ConsistencyProof returns the RFC 6962 consistency proof between the tree
// of size1 leaves and the tree of size2 leaves, read from the tiles of the
// larger one.
func ConsistencyProof(ctx context.Context, r TileReader, size1, size2 uint64) ([][]byte, error) {
	if err := checkSize(size2); err != nil {
		return nil, err
	}
	if size1 > size2 {
		return nil, iotpay.Errorf(iotpay.EINVALID, "tlog: no consistency proof from %d leaves down to %d", size1, size2)
	}
	nodes, err := proof.Consistency(size1, size2)
	if err != nil {
		return nil, iotpay.Wrap(iotpay.EINVALID, "tlog: consistency proof", err)
	}
	return fetch(ctx, r, size2, nodes)
}

func fetch(ctx context.Context, r TileReader, size uint64, nodes proof.Nodes) ([][]byte, error) {
	tc := newTileCache(r, size)
	hashes := make([][]byte, len(nodes.IDs))
	for i, id := range nodes.IDs {
		h, err := tc.node(ctx, id)
		if err != nil {
			return nil, err
		}
		hashes[i] = h
	}
	p, err := nodes.Rehash(hashes, hashChildren)
	if err != nil {
		return nil, iotpay.Wrap(iotpay.EINTERNAL, "tlog: rehash", err)
	}
	return p, nil
}

// VerifyInclusion checks that leafHash is leaf index of the tree of size
// leaves with that root.
func VerifyInclusion(index, size uint64, leafHash []byte, p [][]byte, root []byte) error {
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, index, size, leafHash, p, root); err != nil {
		return iotpay.Wrap(iotpay.EUNAUTHORIZED, "tlog: inclusion proof does not verify", err)
	}
	return nil
}

// VerifyConsistency checks that the tree of size2 leaves with root2 extends
// the tree of size1 leaves with root1.
func VerifyConsistency(size1, size2 uint64, p [][]byte, root1, root2 []byte) error {
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, size1, size2, p, root1, root2); err != nil {
		return iotpay.Wrap(iotpay.EUNAUTHORIZED, "tlog: consistency proof does not verify", err)
	}
	return nil
}
