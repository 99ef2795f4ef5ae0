// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title CheckpointAnchor: public, append-only anchoring of transparency-log checkpoints.
/// @notice The owner (the platform) records, per log origin, the root hash of
/// its Merkle tree at a size. A size is recorded once: a second, different
/// root for the same size (a split view) is refused, and so is a size below
/// the latest; every record is also an event, so anyone can follow the log's
/// history on chain and compare it with the checkpoints the log serves.
contract CheckpointAnchor {
    address public immutable owner;

    /// @notice rootOf[origin][size] is the tree root anchored for that size.
    mapping(bytes32 => mapping(uint64 => bytes32)) public rootOf;
    /// @notice latestSize[origin] is the largest size anchored.
    mapping(bytes32 => uint64) public latestSize;

    event Anchored(bytes32 indexed origin, uint64 indexed size, bytes32 root, bytes32 checkpointHash);

    error NotOwner();
    error SizeDecreases(uint64 latest);
    error SplitView(bytes32 anchoredRoot);
    error EmptyRoot();

    constructor() {
        owner = msg.sender;
    }

    /// @param origin SHA-256 of the log's origin line.
    /// @param size the checkpoint's tree size.
    /// @param root the checkpoint's root hash.
    /// @param checkpointHash SHA-256 of the signed checkpoint note, as served.
    function anchor(bytes32 origin, uint64 size, bytes32 root, bytes32 checkpointHash) external {
        if (msg.sender != owner) revert NotOwner();
        if (root == bytes32(0)) revert EmptyRoot();
        bytes32 anchored = rootOf[origin][size];
        if (anchored != bytes32(0)) {
            if (anchored != root) revert SplitView(anchored);
            return; // already anchored: idempotent
        }
        uint64 latest = latestSize[origin];
        if (size < latest) revert SizeDecreases(latest);
        rootOf[origin][size] = root;
        latestSize[origin] = size;
        emit Anchored(origin, size, root, checkpointHash);
    }
}
