package krb

// FileCache is an MIT FILE cache (format in ccache.go).
type FileCache struct{ Path string }

// Name is "FILE:" and the path.
func (c *FileCache) Name() string { return "FILE:" + c.Path }

// Read parses the file.
func (c *FileCache) Read() (*CCache, error) { return ReadCCache(c.Path) }

// Replace writes a new file and renames it over the old one.
func (c *FileCache) Replace(cc *CCache) error { return WriteCCache(c.Path, cc) }

// Destroy zeroes and removes the file.
func (c *FileCache) Destroy() error { return DestroyCCache(c.Path) }
