package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum/common"
	gethcrypto "github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/audit"
	"github.com/iotpay/iotpay/audit/anchor/eth"
	"github.com/iotpay/iotpay/audit/tlog"
	"github.com/iotpay/iotpay/audit/verify"
	"github.com/iotpay/iotpay/audit/witness"
	"github.com/iotpay/iotpay/internal/atomicfile"
)

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// auditVerify is the independent verifier's command line.
func auditVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("iotpay audit verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	logURL := fs.String("log", "", "the log's URL, e.g. http://127.0.0.1:8080/log/ (required)")
	key := fs.String("key", "", "the log's verifier key, name+hash+base64 (required)")
	var witnesses, leaves listFlag
	fs.Var(&witnesses, "witness", "a witness's (or the SM2 co-signer's) verifier key; repeatable")
	quorum := fs.Int("quorum", 0, "how many of the --witness keys must have co-signed")
	state := fs.String("state", "", "file keeping the last checkpoint verified (default: ~/.iotpay/audit/<log>.checkpoint)")
	full := fs.Bool("full", false, "re-hash every leaf from the entry bundles")
	fs.Var(&leaves, "leaf", "INDEX or INDEX:REQUEST_HASH_HEX (a receipt's log index and request hash): prove it is logged; repeatable")
	ethRPC := fs.String("eth-rpc", "", "Ethereum JSON-RPC URL, to check the checkpoint is anchored")
	ethContract := fs.String("eth-contract", "", "address of the CheckpointAnchor contract")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *logURL == "" || *key == "" {
		return errors.New("audit verify needs --log and --key")
	}
	logKey, err := tlog.NewVerifier(*key)
	if err != nil {
		return err
	}
	o := verify.Options{Log: &tlog.Client{URL: *logURL, HTTP: &http.Client{Timeout: 30 * time.Second}}, LogKey: logKey,
		Quorum: *quorum, Full: *full, StatePath: *state}
	for _, w := range witnesses {
		v, err := witnessVerifier(w)
		if err != nil {
			return err
		}
		o.Witnesses = append(o.Witnesses, v)
	}
	if o.StatePath == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return fmt.Errorf("no --state and no home directory: %w", err)
		}
		dir := filepath.Join(home, ".iotpay", "audit")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		o.StatePath = filepath.Join(dir, strings.NewReplacer("/", "_", ":", "_").Replace(logKey.Name())+".checkpoint")
	}
	for _, l := range leaves {
		leaf, err := leafClaim(l)
		if err != nil {
			return err
		}
		o.Leaves = append(o.Leaves, leaf)
	}
	if *ethRPC != "" {
		if !common.IsHexAddress(*ethContract) {
			return errors.New("--eth-rpc needs --eth-contract, the contract's address")
		}
		client, err := ethclient.DialContext(ctx, *ethRPC)
		if err != nil {
			return fmt.Errorf("ethereum RPC: %w", err)
		}
		defer client.Close()
		o.Anchor = eth.New(client, common.HexToAddress(*ethContract), nil, nil)
	}
	if *full {
		last := time.Time{}
		o.Progress = func(done, total uint64) {
			if time.Since(last) < 100*time.Millisecond && done != total {
				return
			}
			last = time.Now()
			fmt.Fprintf(stderr, "\rre-hashing leaves: %d / %d (%d%%)", done, total, done*100/max(total, 1))
			if done == total {
				fmt.Fprintln(stderr)
			}
		}
	}
	r, err := verify.Run(ctx, o)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "log %s: checkpoint of %d leaves, root %x\n", logKey.Name(), r.Checkpoint.Size, r.Checkpoint.Hash)
	if r.Previous != nil {
		fmt.Fprintf(stdout, "  consistent with the checkpoint of %d leaves verified before\n", r.Previous.Size)
	}
	if len(r.Cosigners) > 0 {
		fmt.Fprintf(stdout, "  co-signed by: %s\n", strings.Join(r.Cosigners, ", "))
	}
	if r.Anchored {
		fmt.Fprintln(stdout, "  anchored on chain")
	}
	if r.Leaves > 0 {
		fmt.Fprintf(stdout, "  %d leaves proven included\n", r.Leaves)
	}
	if r.Rehashed > 0 {
		fmt.Fprintf(stdout, "  %d leaves re-hashed to the root\n", r.Rehashed)
	}
	if !r.OK() {
		for _, f := range r.Failures {
			fmt.Fprintln(stdout, "FAIL:", f)
		}
		return fmt.Errorf("the log failed %d check(s)", len(r.Failures))
	}
	fmt.Fprintln(stdout, "OK")
	return nil
}

// witnessVerifier reads a witness's verifier key: a cosignature/v1 key
// (type 0x04) or an SM2 note key.
func witnessVerifier(vkey string) (note.Verifier, error) {
	if v, err := fnote.NewVerifierForCosignatureV1(vkey); err == nil {
		return v, nil
	}
	return tlog.NewVerifier(vkey)
}

// leafClaim parses INDEX[:REQUEST_HASH_HEX].
func leafClaim(s string) (verify.Leaf, error) {
	idx, hash, hasHash := strings.Cut(s, ":")
	n, err := strconv.ParseUint(idx, 10, 64)
	if err != nil {
		return verify.Leaf{}, fmt.Errorf("--leaf %q: want INDEX or INDEX:REQUEST_HASH_HEX", s)
	}
	l := verify.Leaf{Index: n, Name: idx}
	if hasHash {
		want, err := hex.DecodeString(hash)
		if err != nil || len(want) == 0 {
			return verify.Leaf{}, fmt.Errorf("--leaf %q: the request hash is not hex", s)
		}
		l.Check = func(data []byte) error {
			leaf, err := audit.ParseLeaf(data)
			if err != nil {
				return err
			}
			if !bytes.Equal(leaf.RequestHash, want) {
				return iotpay.Errorf(iotpay.EUNAUTHORIZED, "the leaf records another request (%x)", leaf.RequestHash)
			}
			return nil
		}
	}
	return l, nil
}

// runWitness runs a C2SP tlog-witness for the logs given.
func runWitness(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("iotpay witness", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:7380", "address to serve POST /add-checkpoint on")
	dir := fs.String("dir", "iotpay-witness", "directory of the witness's key and of the checkpoints it co-signed")
	name := fs.String("name", "", "the witness's key name, at first start (default: witness-<host>)")
	var logs listFlag
	fs.Var(&logs, "log", "verifier key of a log to witness; repeatable (required)")
	printKey := fs.Bool("print-key", false, "print the witness's verifier key and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		return err
	}
	skey, err := witnessKey(*dir, *name)
	if err != nil {
		return err
	}
	vkey, err := witness.VerifierKey(skey)
	if err != nil {
		return err
	}
	if *printKey {
		fmt.Fprintln(stdout, vkey)
		return nil
	}
	if len(logs) == 0 {
		return errors.New("witness needs at least one --log key")
	}
	w, err := witness.New(filepath.Join(*dir, "state"), skey, logs, slog.New(slog.NewTextHandler(stderr, nil)))
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: w, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second}
	fmt.Fprintf(stdout, "witness %s on http://%s, key %s\n", w.Name(), ln.Addr(), vkey)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	case err := <-errc:
		return err
	}
}

// witnessKey reads the witness's signer key from dir, making one at first
// start.
func witnessKey(dir, name string) (string, error) {
	path := filepath.Join(dir, "witness.key")
	b, err := os.ReadFile(path)
	if err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	if name == "" {
		host, _ := os.Hostname()
		name = "witness-" + strings.ReplaceAll(host, " ", "-")
	}
	skey, _, err := tlog.GenerateLogKey(name)
	if err != nil {
		return "", err
	}
	if err := atomicfile.WriteNew(path, []byte(skey+"\n"), 0o600); err != nil {
		return "", err
	}
	return skey, nil
}

// auditAnchorDeploy deploys a CheckpointAnchor contract owned by the key
// in --eth-key-file and prints its address, for iotpayd's --eth-contract.
func auditAnchorDeploy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("iotpay audit anchor-deploy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	rpcURL := fs.String("eth-rpc", "", "Ethereum JSON-RPC URL (required)")
	keyFile := fs.String("eth-key-file", "", "file holding the hex secp256k1 key that will own the contract (required)")
	timeout := fs.Duration("timeout", 5*time.Minute, "how long to wait for the deployment to be mined")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *rpcURL == "" || *keyFile == "" {
		return errors.New("audit anchor-deploy needs --eth-rpc and --eth-key-file")
	}
	key, err := gethcrypto.LoadECDSA(*keyFile)
	if err != nil {
		return fmt.Errorf("--eth-key-file: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	client, err := ethclient.DialContext(ctx, *rpcURL)
	if err != nil {
		return fmt.Errorf("ethereum RPC: %w", err)
	}
	defer client.Close()
	chainID, err := client.ChainID(ctx)
	if err != nil {
		return fmt.Errorf("ethereum RPC: %w", err)
	}
	addr, err := eth.Deploy(ctx, client, key, chainID)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, addr.Hex())
	return nil
}
