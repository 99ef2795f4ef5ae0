package keystore_test

import (
	"path/filepath"
	"testing"

	"github.com/iotpay/iotpay/device/keystore"
	"github.com/iotpay/iotpay/device/keystore/keystoretest"
)

func TestSoftConformance(t *testing.T) {
	keystoretest.Run(t, func(t *testing.T) keystore.Keystore {
		s, err := keystore.CreateSoft(filepath.Join(t.TempDir(), "device.key"), []byte("conformance"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
