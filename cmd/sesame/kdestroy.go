package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/sesame-ssh/sesame/krb"
)

// kdestroyParams are MIT kdestroy's flags.
type kdestroyParams struct {
	ccache    string
	all       bool
	quiet     bool
	principal string
}

func init() {
	var p kdestroyParams
	cmd := &cobra.Command{
		Use:   "kdestroy [-A] [-q] [-c CCACHE] [-p PRINCIPAL]",
		Short: "Destroy the credentials cache: overwrite it, then remove it (like MIT kdestroy)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if p.all && p.principal != "" {
				return newUsageError(cmd, "-A and -p cannot be used together")
			}
			return runKdestroy(cmd.ErrOrStderr(), p)
		},
	}
	f := cmd.Flags()
	cacheFlag(f, &p.ccache)
	f.BoolVarP(&p.all, "all", "A", false, "destroy every cache of the collection")
	f.BoolVarP(&p.quiet, "quiet", "q", false, "quiet (MIT's -q: no other-caches warning)")
	f.StringVarP(&p.principal, "principal", "p", "", "destroy the cache of the collection whose default principal is `PRINCIPAL`")
	rootCmd.AddCommand(cmd)
}

// runKdestroy zeroes and unlinks the cache file (for a DIR collection,
// its primary cache, or with all every cache in it). As MIT kdestroy, a
// cache that is not there is reported but is no failure: the goal, no
// tickets on disk, holds.
func runKdestroy(stderr io.Writer, p kdestroyParams) error {
	name, err := resolveCache(p.ccache)
	if err != nil {
		return err
	}
	if p.principal != "" {
		if name, err = cacheOfPrincipal(name, p.principal); err != nil {
			return err
		}
	}
	if !p.all {
		err := name.Destroy()
		if errors.Is(err, krb.ErrNoCache) {
			if name.Path() != "" {
				fmt.Fprintf(stderr, "sesame: no credentials cache found while destroying cache (filename: %s)\n", name.Path())
			} else {
				fmt.Fprintf(stderr, "sesame: no credentials cache found while destroying cache %s\n", name)
			}
			return nil
		}
		if err == nil && !p.quiet && p.principal == "" && name.Type != "FILE" {
			if others, _ := name.Collection(); len(others) > 0 {
				fmt.Fprintln(stderr, "Other credential caches present, use -A to destroy all")
			}
		}
		return err
	}
	members, err := name.Collection()
	if err != nil {
		return err
	}
	var first error
	for _, m := range members {
		if err := m.Destroy(); err != nil && !errors.Is(err, krb.ErrNoCache) && first == nil {
			first = err
		}
	}
	return first
}

// cacheOfPrincipal finds the cache of the collection whose default
// principal is princ (MIT kdestroy -p, krb5_cc_cache_match).
func cacheOfPrincipal(coll krb.CacheName, princ string) (krb.CacheName, error) {
	realm := ""
	if cfg, err := krb.LoadConfig(); err == nil {
		realm = cfg.DefaultRealm
	}
	want, err := krb.ParsePrincipal(princ, realm)
	if err != nil {
		return krb.CacheName{}, err
	}
	members, err := coll.Collection()
	if err != nil {
		return krb.CacheName{}, err
	}
	for _, m := range members {
		cc, err := m.Read()
		if err != nil {
			continue
		}
		if cc.DefaultPrincipal.String() == want.String() {
			return m, nil
		}
	}
	return krb.CacheName{}, fmt.Errorf("no credentials cache of %s in %s", princ, coll)
}
