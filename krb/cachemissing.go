package krb

import "fmt"

// cacheMissingError says that a cache kept outside files (a keyring)
// does not exist or holds no principal yet. It matches ErrNoCache.
type cacheMissingError struct{ Name string }

func (e *cacheMissingError) Error() string {
	return fmt.Sprintf("%s (cache: %s)", ccNoCacheMsg, e.Name)
}

// Is makes errors.Is(err, ErrNoCache) true.
func (e *cacheMissingError) Is(target error) bool { return target == ErrNoCache }

// Hint suggests the way out.
func (e *cacheMissingError) Hint() string { return "get a ticket with: sesame kinit" }
