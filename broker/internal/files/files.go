// Package files holds the file handling the keyring and the revocation state
// share: atomic writes and cheap re-reads of a directory several processes
// write to.
package files

import (
	"os"
	"path/filepath"
	"time"
)

// WriteAtomic writes data and a newline to dir/name with mode 0600: into a
// temporary file in the same directory, synced, then renamed over the
// target. Readers in other processes (a second issuer instance sharing the
// directory) see the old file or the new one, never a partial write.
func WriteAtomic(dir, name string, data []byte) error {
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

// DirWatch remembers a directory's modification time as of its last full
// read, so that a reload can skip a directory nothing has changed.
type DirWatch struct {
	seen    time.Time // of the last listing taken in
	pending time.Time // of the last listing handed out
}

// Entries lists dir unless it shows the modification time of the last
// listing: changed is false, and entries nil, when nothing can have changed.
// Directory times are coarse (a few ms on Linux): a second change in the
// same tick as the last listing leaves the time as it was, so a time less
// than two seconds old always counts as changed rather than miss that
// change for good. The caller holds the lock that serialises its reloads.
func (w *DirWatch) Entries(dir string) (entries []os.DirEntry, changed bool, err error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, false, err
	}
	if !w.seen.IsZero() && st.ModTime().Equal(w.seen) && time.Since(w.seen) > 2*time.Second {
		return nil, false, nil
	}
	if entries, err = os.ReadDir(dir); err != nil {
		return nil, false, err
	}
	w.pending = st.ModTime()
	return entries, true, nil
}

// Read records that the last listing was fully taken in; a listing whose
// reload failed is not recorded, so the next reload reads it again.
func (w *DirWatch) Read() { w.seen = w.pending }
