package edge_test

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/iotpay/iotpay"
	"github.com/iotpay/iotpay/edge/gateway"
)

// A gateway in a process of its own, so that a test can kill it: the test
// binary started again with childEnv set runs one gateway from the JSON in
// it, prints its addresses and runs until killed or its stdin ends.
const childEnv = "IOTPAY_EDGE_TEST_GATEWAY"

type childConfig struct {
	Dir, Plain, DTLS, Secret, Uplink, Gateway string
	Cert, Key, CA                             []byte // PEM
}

func TestMain(m *testing.M) {
	if cfg := os.Getenv(childEnv); cfg != "" {
		if err := runChild(cfg); err != nil {
			fmt.Fprintln(os.Stderr, "gateway child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func runChild(raw string) error {
	var c childConfig
	if err := json.Unmarshal([]byte(raw), &c); err != nil {
		return err
	}
	secret, err := hex.DecodeString(c.Secret)
	if err != nil {
		return err
	}
	cert, err := tls.X509KeyPair(c.Cert, c.Key)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.CA)
	up := gateway.UplinkConfig{Addr: c.Uplink, GatewayID: iotpay.DeviceID(c.Gateway),
		TLS: &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13}}
	g, err := gateway.New(gateway.Config{DataDir: c.Dir, CoAPAddr: c.Plain, DTLSAddr: c.DTLS, PSKSecret: secret, Uplink: up,
		AnswerWait: 500 * time.Millisecond})
	if err != nil {
		return err
	}
	if err := g.Start(); err != nil {
		return err
	}
	defer g.Close()
	fmt.Printf("%s %s\n", g.Addr(), g.DTLSAddr())
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { io.Copy(io.Discard, os.Stdin); close(done) }()
	select {
	case <-done:
	case <-stop:
	}
	return nil
}

// child is a gateway process.
type child struct {
	cmd         *exec.Cmd
	stdin       io.WriteCloser
	Plain, DTLS string
}

// startChild starts a gateway process on dir, binding plain and dtls.
func startChild(t *testing.T, dir string, up gateway.UplinkConfig, ca *x509.Certificate, secret []byte, plain, dtls string) *child {
	t.Helper()
	tc := up.TLS
	leaf := tc.Certificates[0]
	keyDER, err := x509.MarshalPKCS8PrivateKey(leaf.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw})
	cfg, _ := json.Marshal(childConfig{Dir: dir, Plain: plain, DTLS: dtls, Secret: hex.EncodeToString(secret), Uplink: up.Addr,
		Gateway: string(up.GatewayID), Cert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Certificate[0]}),
		Key: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), CA: caPEM})
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(cfg))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, stdin: stdin}
	t.Cleanup(func() { c.stop() })
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			line <- sc.Text()
		}
		close(line)
		io.Copy(io.Discard, out)
	}()
	select {
	case l, ok := <-line:
		if !ok {
			t.Fatal("the gateway process ended before it was up")
		}
		if _, err := fmt.Sscan(l, &c.Plain, &c.DTLS); err != nil {
			t.Fatalf("gateway process said %q", l)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the gateway process did not come up")
	}
	return c
}

// kill ends the process at once, as a power cut would.
func (c *child) kill(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	c.cmd.Wait()
}

// stop ends the process politely (it closes its gateway), if it still
// runs.
func (c *child) stop() {
	c.stdin.Close()
	done := make(chan struct{})
	go func() { c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		c.cmd.Process.Kill()
		<-done
	}
}
