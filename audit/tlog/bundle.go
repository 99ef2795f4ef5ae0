package tlog

import (
	"encoding/binary"

	"github.com/iotpay/iotpay"
)

// AppendBundleEntry appends one entry to an entry bundle (C2SP tlog-tiles):
// its length as a big-endian uint16, then its bytes.
func AppendBundleEntry(bundle, entry []byte) ([]byte, error) {
	if len(entry) > EntryBytesMax {
		return nil, iotpay.Errorf(iotpay.EINVALID, "tlog: entry of %d bytes exceeds %d", len(entry), EntryBytesMax)
	}
	return append(binary.BigEndian.AppendUint16(bundle, uint16(len(entry))), entry...), nil
}

// ParseBundle splits an entry bundle into its entries, which must number
// width (1 to 256). The entries alias b.
func ParseBundle(b []byte, width int) ([][]byte, error) {
	if width < 1 || width > TileWidth {
		return nil, iotpay.Errorf(iotpay.EINVALID, "tlog: bundle width %d", width)
	}
	out := make([][]byte, 0, width)
	for len(b) > 0 {
		if len(b) < 2 {
			return nil, iotpay.Errorf(iotpay.EINVALID, "tlog: bundle truncated in a length")
		}
		n := int(binary.BigEndian.Uint16(b))
		if len(b)-2 < n {
			return nil, iotpay.Errorf(iotpay.EINVALID, "tlog: bundle truncated in entry %d", len(out))
		}
		if len(out) == width {
			return nil, iotpay.Errorf(iotpay.EINVALID, "tlog: bundle has more than %d entries", width)
		}
		out = append(out, b[2:2+n:2+n])
		b = b[2+n:]
	}
	if len(out) != width {
		return nil, iotpay.Errorf(iotpay.EINVALID, "tlog: bundle has %d entries, want %d", len(out), width)
	}
	return out, nil
}
