package pin

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"time"

	"github.com/sesame-ssh/sesame/internal/atomicfile"
	"github.com/sesame-ssh/sesame/internal/paths"
	"github.com/sesame-ssh/sesame/internal/statefile"
)

// LearnedFileName is the name of the learned pins file in paths.State().
const LearnedFileName = "learned-pins.json"

// DefaultLearnedFile is where learned pins live.
func DefaultLearnedFile() string { return filepath.Join(paths.State(), LearnedFileName) }

const maxLearnedFile = 64 << 20

// Learned is one learned pin: the server with this host key accepted Key
// for User (it asked the agent to sign a userauth request with it).
type Learned struct {
	HostKey   string    `json:"host_key"`
	Names     []string  `json:"names,omitempty"` // known_hosts names of the host key when last used
	User      string    `json:"user"`
	Key       string    `json:"key"`
	FirstUsed time.Time `json:"first_used"`
	LastUsed  time.Time `json:"last_used"`
	Count     int       `json:"count"`
}

type learnedFile struct {
	Version int       `json:"version"`
	Pins    []Learned `json:"pins"`
}

// LearnedFormatError says why the learned pins file does not parse, in
// words (no decoder offsets).
type LearnedFormatError struct {
	File   string
	Reason string
}

func (e *LearnedFormatError) Error() string {
	return fmt.Sprintf("learned pins file %s: %s", e.File, e.Reason)
}

// ParseLearned parses the learned pins file.
func ParseLearned(data []byte, file string) ([]Learned, error) {
	if len(data) == 0 {
		return nil, nil
	}
	var lf learnedFile
	if err := json.Unmarshal(data, &lf); err != nil {
		return nil, &LearnedFormatError{file, "not valid JSON"}
	}
	if lf.Version != 1 {
		return nil, &LearnedFormatError{file, fmt.Sprintf("unknown version %d", lf.Version)}
	}
	for i, l := range lf.Pins {
		if ValidFingerprint(l.HostKey) != nil || ValidFingerprint(l.Key) != nil {
			return nil, &LearnedFormatError{file, fmt.Sprintf("entry %d: bad fingerprint", i+1)}
		}
	}
	return lf.Pins, nil
}

func marshalLearned(pins []Learned) []byte {
	sorted := append([]Learned(nil), pins...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].LastUsed.After(sorted[j].LastUsed) })
	b, _ := json.MarshalIndent(learnedFile{Version: 1, Pins: sorted}, "", "  ")
	return append(b, '\n')
}

// ReadLearned reads the learned pins file; a missing file has none, and
// so has a damaged one, which is set aside with a warning.
func ReadLearned(path string) ([]Learned, error) {
	return readStateFile(path, maxLearnedFile, "learned pins file", ParseLearned)
}

// formatError is a state file that does not parse. Learned pins are
// relearned on the next logins and a search for a key starts over: such a
// file is set aside (kept for a look) and the state goes on empty, rather
// than stop every command and the agent until someone edits it.
type formatError interface {
	error
	formatReason() string
}

func (e *LearnedFormatError) formatReason() string { return e.Reason }

// readStateFile reads and parses one of the JSON state files (what names
// it in the warning); a missing or damaged file has no entries.
func readStateFile[T any](path string, max int64, what string, parse func([]byte, string) ([]T, error)) ([]T, error) {
	data, err := readBounded(path, max)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	v, err := parse(data, path)
	var fe formatError
	if errors.As(err, &fe) {
		if _, err := statefile.SetAside(path, what, fe.formatReason()); err != nil {
			return nil, err
		}
		return nil, nil
	}
	return v, err
}

// updateStateFile changes a JSON state file under its lock file, so that
// the agent's writer and a command never lose each other's change.
func updateStateFile[T any](path string, read func(string) ([]T, error), marshal func([]T) []byte, change func([]T) []T) error {
	if err := paths.EnsureDir(filepath.Dir(path)); err != nil {
		return err
	}
	unlock, err := lockFile(path + ".lock")
	if err != nil {
		return err
	}
	defer unlock()
	cur, err := read(path)
	if err != nil {
		return err
	}
	return atomicfile.Write(path, marshal(change(cur)), 0o600)
}

// learnEvent is one successful signature to fold into the learned pins.
type learnEvent struct {
	hostKey, user, key string
	names              []string
	at                 time.Time
}

// apply folds ev into pins.
func (ev learnEvent) apply(pins []Learned) []Learned {
	for i := range pins {
		l := &pins[i]
		if l.HostKey == ev.hostKey && l.User == ev.user && l.Key == ev.key {
			l.Count++
			if ev.at.After(l.LastUsed) {
				l.LastUsed = ev.at
			}
			if len(ev.names) > 0 {
				l.Names = ev.names
			}
			return pins
		}
	}
	return append(pins, Learned{HostKey: ev.hostKey, Names: ev.names, User: ev.user, Key: ev.key,
		FirstUsed: ev.at, LastUsed: ev.at, Count: 1})
}

// UpdateLearned changes the learned pins file under its lock, so that the
// agent's background writer and a command never lose each other's change.
func UpdateLearned(path string, change func([]Learned) []Learned) error {
	return updateStateFile(path, ReadLearned, marshalLearned, change)
}

// lockFile takes an exclusive flock on path (created 0600).
func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// fileSig identifies a version of a file cheaply: a stat per check catches
// in-place edits (mtime, size) and editors that rename a new file over the
// old one (inode).
type fileSig struct {
	exists bool
	ino    uint64
	dev    uint64
	size   int64
	mtime  int64
	ctime  int64
}

func statSig(path string) fileSig {
	fi, err := os.Stat(path)
	if err != nil {
		return fileSig{}
	}
	s := fileSig{exists: true, size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.ino, s.dev = st.Ino, uint64(st.Dev)
		s.ctime = ctimeNanos(st)
	}
	return s
}
