package device

import (
	"encoding/json"
	"errors"
	"os"
	"sync"

	"github.com/iotpay/iotpay/internal/atomicfile"
)

// FileState keeps State in a JSON file, replaced atomically and synced on
// every save.
type FileState struct{ Path string }

// Load reads the state; a missing file is the zero state.
func (f FileState) Load() (State, error) {
	var s State
	b, err := os.ReadFile(f.Path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, err
	}
	return s, json.Unmarshal(b, &s)
}

// Save writes the state durably.
func (f FileState) Save(s State) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return atomicfile.Write(f.Path, b, 0o600)
}

// MemState keeps State in memory, for simulated devices.
type MemState struct {
	mu sync.Mutex
	s  State
}

// Load returns the state.
func (m *MemState) Load() (State, error) { m.mu.Lock(); defer m.mu.Unlock(); return m.s, nil }

// Save keeps the state.
func (m *MemState) Save(s State) error { m.mu.Lock(); defer m.mu.Unlock(); m.s = s; return nil }
