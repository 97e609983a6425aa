package main

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/sesame-ssh/sesame/krb"
)

func init() {
	var ccache string
	var all bool
	cmd := &cobra.Command{
		Use:   "kdestroy",
		Short: "Destroy the credentials cache: overwrite it, then remove it (like MIT kdestroy)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runKdestroy(ccache, all)
		},
	}
	cmd.Flags().StringVarP(&ccache, "cache", "c", "", "credentials cache (FILE:path, DIR:dir, KCM:, KEYRING:… or a path)")
	cmd.Flags().BoolVarP(&all, "all", "A", false, "destroy every cache of the collection")
	rootCmd.AddCommand(cmd)
}

// runKdestroy zeroes and unlinks the cache file (for a DIR collection,
// its primary cache, or with all every cache in it).
func runKdestroy(ccache string, all bool) error {
	name, err := resolveCache(ccache)
	if err != nil {
		return err
	}
	if !all {
		return name.Destroy()
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
