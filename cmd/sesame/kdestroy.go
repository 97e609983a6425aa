package main

import (
	"github.com/spf13/cobra"

	"github.com/sesame-ssh/sesame/krb"
)

func init() {
	var ccache string
	cmd := &cobra.Command{
		Use:   "kdestroy",
		Short: "Destroy the credentials cache: overwrite it, then remove it (like MIT kdestroy)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runKdestroy(ccache)
		},
	}
	cmd.Flags().StringVarP(&ccache, "cache", "c", "", "credentials cache (FILE:path, DIR:dir or a path)")
	rootCmd.AddCommand(cmd)
}

// runKdestroy zeroes and unlinks the cache file (for a DIR collection,
// its primary cache).
func runKdestroy(ccache string) error {
	name, err := resolveCache(ccache)
	if err != nil {
		return err
	}
	return krb.DestroyCCache(name.Path())
}
