// Package pkcs11test gives each test a throw-away SoftHSM2 token, the way
// store/postgres/pgtest gives each a database. A test fails, rather than
// skips, when SoftHSM2 is not installed: scripts/setup.sh installs it.
package pkcs11test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/iotpay/iotpay/device/keystore/pkcs11"
)

// Test PINs of every throw-away token.
const (
	PIN   = "1234"
	SOPIN = "5678"
)

// Token initializes a new SoftHSM2 token in a temporary directory and
// returns a config for it, which names both its label and its slot. It points SOFTHSM2_CONF at the token's
// configuration for the rest of the test (t.Setenv: the test may not be
// parallel), which the library reads when the first keystore of the
// process loads it; so a test must close its keystores, as the library is
// reloaded with the next test's configuration only after the last closes.
func Token(t testing.TB, label string) pkcs11.Config {
	t.Helper()
	Module(t)
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	body := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n", tokens)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOFTHSM2_CONF", conf)
	return AnotherToken(t, label)
}

// AnotherToken initializes one more token beside those of the test's
// Token, in the same configuration, and returns a config for it.
func AnotherToken(t testing.TB, label string) pkcs11.Config {
	t.Helper()
	if os.Getenv("SOFTHSM2_CONF") == "" {
		t.Fatal("pkcs11test.AnotherToken before Token")
	}
	out, err := exec.Command("softhsm2-util", "--init-token", "--free", "--label", label, "--pin", PIN, "--so-pin", SOPIN).CombinedOutput()
	if err != nil {
		t.Fatalf("softhsm2-util --init-token: %v: %s", err, out)
	}
	// "The token has been initialized and is reassigned to slot 1234"
	f := strings.Fields(string(out))
	if len(f) == 0 {
		t.Fatal("softhsm2-util --init-token said nothing")
	}
	slot, err := strconv.ParseUint(f[len(f)-1], 10, 0)
	if err != nil {
		t.Fatalf("softhsm2-util --init-token said no slot: %s", out)
	}
	s := uint(slot)
	return pkcs11.Config{Module: Module(t), Token: label, Slot: &s, PIN: PIN}
}

// Module returns the path of SoftHSM2's PKCS#11 library, failing the test
// when SoftHSM2 is not installed.
func Module(t testing.TB) string {
	t.Helper()
	if _, err := exec.LookPath("softhsm2-util"); err != nil {
		t.Fatal("SoftHSM2 is not installed (Debian softhsm2; scripts/setup.sh installs it)")
	}
	if _, err := os.Stat(pkcs11.DefaultModule); err == nil {
		return pkcs11.DefaultModule
	}
	out, err := exec.Command("dpkg", "-L", "softhsm2", "libsofthsm2").Output()
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasSuffix(l, "/libsofthsm2.so") {
			return l
		}
	}
	t.Fatalf("SoftHSM2's libsofthsm2.so not found at %s nor by dpkg -L (%v)", pkcs11.DefaultModule, err)
	return ""
}
