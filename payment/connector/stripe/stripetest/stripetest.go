// Package stripetest runs stripe-mock, Stripe's API stand-in, for tests:
// Start finds the binary, starts it on free loopback ports and stops it
// when the test ends; Rewrite puts a proxy in front of it that changes its
// answers (stripe-mock is stateless and answers fixed fixtures, so a test
// that needs, say, a held PaymentIntent rewrites the status on the way).
//
// stripe-mock is installed by scripts/setup.sh (see InstallCommand). A
// test that needs it is skipped when it is missing, except under CI (the
// CI environment variable set) or with IOTPAY_REQUIRE_STRIPE_MOCK=1, where
// it fails.
package stripetest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Version is the stripe-mock release the tests are written against.
const Version = "v0.203.0"

// InstallCommand installs stripe-mock.
const InstallCommand = "go install github.com/stripe/stripe-mock@" + Version

// Key is a secret key stripe-mock accepts.
const Key = "sk_test_iotpay"

const (
	binary = "stripe-mock"
	// versionFile is what scripts/setup.sh writes beside the binary.
	versionFile = ".stripe-mock-version"
	// startTimeout bounds stripe-mock's start (it loads Stripe's whole
	// OpenAPI spec first: under a second here).
	startTimeout = 30 * time.Second
	// pollInterval spaces the probes while it starts.
	pollInterval = 20 * time.Millisecond
	// probeTimeout bounds one probe.
	probeTimeout = 2 * time.Second
	// maxStartOutput bounds the output kept to explain a failed start,
	// in bytes.
	maxStartOutput = 8 << 10
	// listening is how stripe-mock announces its HTTP address.
	listening = "Listening for HTTP at address: "
)

// Start runs stripe-mock on free loopback ports until tb ends and returns
// its HTTP base URL ("http://127.0.0.1:port").
func Start(tb testing.TB) string {
	tb.Helper()
	bin, err := Binary()
	if err != nil {
		if Required() {
			tb.Fatalf("stripetest: %v (install it with: %s, or run scripts/setup.sh)", err, InstallCommand)
		}
		tb.Skipf("stripetest: %v; install it with: %s (or run scripts/setup.sh)", err, InstallCommand)
	}
	if v, err := os.ReadFile(filepath.Join(filepath.Dir(bin), versionFile)); err == nil && strings.TrimSpace(string(v)) != Version {
		tb.Logf("stripetest: %s is %s, the tests expect %s", bin, strings.TrimSpace(string(v)), Version)
	}

	// Port 0 everywhere: the system picks free ports, so parallel test
	// processes never clash; HTTPS is given one too, else stripe-mock
	// would listen on 12112 on all interfaces.
	cmd := exec.Command(bin, "-http-addr", "127.0.0.1:0", "-https-addr", "127.0.0.1:0")
	cmd.Env = withoutPort(os.Environ())
	dieWithParent(cmd)
	r, w, err := os.Pipe()
	if err != nil {
		tb.Fatalf("stripetest: %v", err)
	}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		tb.Fatalf("stripetest: starting %s: %v", bin, err)
	}
	w.Close() // the child has its copy: EOF when it exits

	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	tb.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})

	out := &startOutput{}
	addr := make(chan string, 1)
	go func() {
		defer r.Close()
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			line := sc.Text()
			if a, ok := strings.CutPrefix(line, listening); ok {
				select {
				case addr <- a:
				default:
				}
			}
			out.add(line)
		}
		// stripe-mock logs every request: keep reading, or it blocks
		// on a full pipe.
		io.Copy(io.Discard, r)
	}()

	deadline := time.NewTimer(startTimeout)
	defer deadline.Stop()
	var a string
	select {
	case a = <-addr:
	case <-exited:
		tb.Fatalf("stripetest: stripe-mock exited at start:\n%s", out)
	case <-deadline.C:
		tb.Fatalf("stripetest: stripe-mock did not start in %v:\n%s", startTimeout, out)
	}
	if _, port, err := splitAddr(a); err != nil || port == 0 {
		tb.Fatalf("stripetest: stripe-mock announced %q", a)
	}
	base := "http://" + a
	for !answers(base) {
		select {
		case <-exited:
			tb.Fatalf("stripetest: stripe-mock exited at start:\n%s", out)
		case <-deadline.C:
			tb.Fatalf("stripetest: stripe-mock at %s did not answer in %v:\n%s", base, startTimeout, out)
		case <-time.After(pollInterval):
		}
	}
	return base
}

// answers reports whether the API at base answers a balance request.
func answers(base string) bool {
	req, err := http.NewRequest(http.MethodGet, base+"/v1/balance", nil)
	if err != nil {
		return false
	}
	req.Header.Set("Authorization", "Bearer "+Key)
	res, err := (&http.Client{Timeout: probeTimeout}).Do(req)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode == http.StatusOK
}

func splitAddr(a string) (string, int, error) {
	i := strings.LastIndexByte(a, ':')
	if i < 0 {
		return "", 0, errors.New("no port")
	}
	p, err := strconv.Atoi(a[i+1:])
	return a[:i], p, err
}

// withoutPort drops PORT, which stripe-mock would otherwise listen on.
func withoutPort(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, "PORT=") {
			out = append(out, kv)
		}
	}
	return out
}

// startOutput keeps the start of stripe-mock's output, to explain a
// failed start.
type startOutput struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (o *startOutput) add(line string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.buf.Len()+len(line) < maxStartOutput {
		o.buf.WriteString(line)
		o.buf.WriteByte('\n')
	}
}

func (o *startOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// Required reports whether a missing stripe-mock fails a test rather
// than skips it: under CI, or with IOTPAY_REQUIRE_STRIPE_MOCK=1.
func Required() bool {
	ci := os.Getenv("CI")
	return (ci != "" && ci != "false" && ci != "0") || os.Getenv("IOTPAY_REQUIRE_STRIPE_MOCK") == "1"
}

// Binary finds stripe-mock: on PATH, then in GOBIN, then in each
// GOPATH's bin (as go install puts it).
func Binary() (string, error) {
	if p, err := exec.LookPath(binary); err == nil {
		return p, nil
	}
	var dirs []string
	if d := os.Getenv("GOBIN"); d != "" {
		dirs = append(dirs, d)
	}
	if out, err := exec.Command("go", "env", "GOBIN", "GOPATH").Output(); err == nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(lines) == 2 {
			if d := strings.TrimSpace(lines[0]); d != "" {
				dirs = append(dirs, d)
			}
			for _, gp := range filepath.SplitList(strings.TrimSpace(lines[1])) {
				dirs = append(dirs, filepath.Join(gp, "bin"))
			}
		}
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, "go", "bin")) // GOPATH's default, without go on PATH
	}
	for _, d := range dirs {
		p := filepath.Join(d, binary)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", errors.New(binary + " not found on PATH, in GOBIN or in GOPATH/bin")
}

// Request is what a client asked the API behind a Rewrite proxy.
type Request struct {
	Method, Path string
	// Form is the request's parameters: the query of a GET, the form
	// body of a POST.
	Form url.Values
}

type requestKey struct{}

// Rewrite starts a proxy in front of the API at base until tb ends and
// returns its URL. Each JSON object answered with 200 goes through fn,
// with the request it answers, before the client sees it. The proxy
// listens on 127.0.0.1 only.
func Rewrite(tb testing.TB, base string, fn func(r *Request, obj map[string]any)) string {
	tb.Helper()
	target, err := url.Parse(base)
	if err != nil {
		tb.Fatalf("stripetest: %v", err)
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			rq := &Request{Method: pr.In.Method, Path: pr.In.URL.Path, Form: pr.In.URL.Query()}
			if pr.In.Body != nil && pr.In.Method != http.MethodGet {
				body, err := io.ReadAll(pr.In.Body)
				if err == nil {
					if f, err := url.ParseQuery(string(body)); err == nil {
						rq.Form = f
					}
				}
				pr.Out.Body = io.NopCloser(bytes.NewReader(body))
				pr.Out.ContentLength = int64(len(body))
			}
			pr.Out = pr.Out.WithContext(context.WithValue(pr.Out.Context(), requestKey{}, rq))
		},
		ModifyResponse: func(res *http.Response) error {
			if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
				return nil
			}
			body, err := io.ReadAll(res.Body)
			res.Body.Close()
			if err != nil {
				return err
			}
			var obj map[string]any
			if err := json.Unmarshal(body, &obj); err != nil {
				return err
			}
			rq, _ := res.Request.Context().Value(requestKey{}).(*Request)
			if rq == nil {
				rq = &Request{Method: res.Request.Method, Path: res.Request.URL.Path}
			}
			fn(rq, obj)
			if body, err = json.Marshal(obj); err != nil {
				return err
			}
			res.Body = io.NopCloser(bytes.NewReader(body))
			res.ContentLength = int64(len(body))
			res.Header.Set("Content-Length", strconv.Itoa(len(body)))
			return nil
		},
	}
	srv := httptest.NewServer(proxy)
	tb.Cleanup(srv.Close)
	return srv.URL
}
