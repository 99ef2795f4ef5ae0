// Package atomicfile replaces files so that a crash leaves either the old
// content or the new, never a torn file.
package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// Write writes data to path through a synced temporary file in the same
// directory and a rename.
func Write(path string, data []byte, perm os.FileMode) error {
	tmp, err := synced(path, data, perm)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	return os.Rename(tmp, path)
}

// WriteNew writes data to a new file at path, so that a crash leaves
// either no file or the whole file: the synced temporary file is
// hard-linked into place, which unlike a rename fails (fs.ErrExist) if
// path exists; then the directory entry is synced.
func WriteNew(path string, data []byte, perm os.FileMode) error {
	tmp, err := synced(path, data, perm)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return err
		}
		// Some file systems (FAT on an SD card) have no hard links: fall
		// back to check-then-rename, which is atomic but could replace a
		// file created in between.
		if _, serr := os.Lstat(path); serr == nil {
			return fs.ErrExist
		}
		if err := os.Rename(tmp, path); err != nil {
			return err
		}
	}
	return syncDir(filepath.Dir(path))
}

// synced writes data to a temporary file beside path, with mode perm,
// synced and closed, and returns its name.
func synced(path string, data []byte, perm os.FileMode) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return "", err
	}
	err = f.Chmod(perm)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// syncDir makes a new directory entry durable.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil // directories cannot be opened for syncing there
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
