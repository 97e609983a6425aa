//go:build !linux

package krb

import (
	"errors"
	"fmt"
)

// KeyringCache is a Linux kernel keyring cache; elsewhere every use fails.
type KeyringCache struct {
	Anchor, Collection, Subsidiary string
	Single                         bool
}

var errNoKeyrings = errors.New("KEYRING credentials caches exist only on Linux")

// ResolveKeyring fails: there are no kernel keyrings on this system.
func ResolveKeyring(residual string) (*KeyringCache, error) {
	return nil, fmt.Errorf("KEYRING:%s: %w", residual, errNoKeyrings)
}

func (c *KeyringCache) Name() string {
	return "KEYRING:" + c.Anchor + ":" + c.Collection + ":" + c.Subsidiary
}
func (c *KeyringCache) String() string                        { return c.Name() }
func (c *KeyringCache) Read() (*CCache, error)                { return nil, errNoKeyrings }
func (c *KeyringCache) Replace(*CCache) error                 { return errNoKeyrings }
func (c *KeyringCache) Destroy() error                        { return errNoKeyrings }
func (c *KeyringCache) SetPrimary() error                     { return errNoKeyrings }
func (c *KeyringCache) NewSubsidiary() (*KeyringCache, error) { return nil, errNoKeyrings }
func (c *KeyringCache) List() ([]*KeyringCache, error)        { return nil, errNoKeyrings }
