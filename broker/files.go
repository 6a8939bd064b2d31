package broker

import (
	"os"
	"path/filepath"
)

// writeFileAtomic writes data and a newline to dir/name with mode 0600: into a
// temporary file in the same directory, synced, then renamed over the
// target. Readers in other processes (a second issuer instance sharing the
// directory) see the old file or the new one, never a partial write.
func writeFileAtomic(dir, name string, data []byte) error {
	tmp, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), filepath.Join(dir, name))
}
