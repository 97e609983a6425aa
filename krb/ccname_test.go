package krb

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestResolveCacheNamePrecedence(t *testing.T) {
	uid := strconv.Itoa(os.Getuid())
	cfg, err := ParseConfig("c.conf", []byte("[libdefaults]\n default_ccache_name = FILE:/tmp/conf_%{uid}\n"))
	if err != nil {
		t.Fatal(err)
	}

	t.Setenv("KRB5CCNAME", "FILE:/tmp/from_env")
	n, err := ResolveCacheName("/tmp/from_flag", cfg)
	if err != nil || n.Path() != "/tmp/from_flag" || n.Source != SourceFlag || n.String() != "FILE:/tmp/from_flag" {
		t.Errorf("flag: %+v %v", n, err)
	}
	n, err = ResolveCacheName("", cfg)
	if err != nil || n.Path() != "/tmp/from_env" || n.Source != SourceEnv {
		t.Errorf("env: %+v %v", n, err)
	}
	// KRB5CCNAME is used as given: MIT does not expand tokens there.
	t.Setenv("KRB5CCNAME", "/tmp/lit_%{uid}")
	if n, _ = ResolveCacheName("", cfg); n.Path() != "/tmp/lit_%{uid}" {
		t.Errorf("env must not be expanded: %q", n.Path())
	}
	t.Setenv("KRB5CCNAME", "")
	n, err = ResolveCacheName("", cfg)
	if err != nil || n.Path() != "/tmp/conf_"+uid || n.Source != SourceConfig {
		t.Errorf("config: %+v %v", n, err)
	}
	n, err = ResolveCacheName("", nil)
	if err != nil || n.Path() != "/tmp/krb5cc_"+uid || n.Source != SourceDefault || n.Type != "FILE" {
		t.Errorf("default: %+v %v", n, err)
	}
	bad, _ := ParseConfig("c.conf", []byte("[libdefaults]\n default_ccache_name = FILE:/tmp/%{bogus}\n"))
	if _, err := ResolveCacheName("", bad); err == nil || !strings.Contains(err.Error(), "default_ccache_name") {
		t.Errorf("bad token: %v", err)
	}
}

func TestParseCacheNameForms(t *testing.T) {
	for in, path := range map[string]string{
		"FILE:/a/b": "/a/b", "file:/a/b": "/a/b", "/a/b": "/a/b", "rel/cc": "rel/cc", "/odd/na:me": "/odd/na:me",
	} {
		n, err := ParseCacheName(in, SourceFlag)
		if err != nil || n.Type != "FILE" || n.Path() != path {
			t.Errorf("%q: %+v %v", in, n, err)
		}
	}
	for _, in := range []string{"MEMORY:x", "API:x", "MSLSA:", "BOGUS:x"} {
		_, err := ParseCacheName(in, SourceEnv)
		var ue *UnsupportedCacheError
		if !errors.As(err, &ue) {
			t.Fatalf("%q: want UnsupportedCacheError, got %v", in, err)
		}
		if !strings.Contains(ue.Hint(), "export KRB5CCNAME=FILE:/tmp/krb5cc_$(id -u)") || !strings.Contains(err.Error(), "KRB5CCNAME") {
			t.Errorf("%q: error %q hint %q", in, err, ue.Hint())
		}
	}
	if _, err := ParseCacheName("FILE:", SourceFlag); err == nil {
		t.Error("empty FILE name accepted")
	}
}

func TestDirCollection(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "krb5cc")
	n, err := ParseCacheName("DIR:"+dir, SourceFlag)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Fatalf("collection dir not created 0700: %v %v", fi, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "primary")); string(b) != "tkt\n" {
		t.Errorf("primary %q", b)
	}
	if n.Path() != filepath.Join(dir, "tkt") || n.String() != "DIR::"+filepath.Join(dir, "tkt") || n.Dir() != dir {
		t.Errorf("name %+v", n)
	}

	sub, err := n.NewSubsidiary()
	if err != nil || !strings.HasPrefix(filepath.Base(sub.Path()), "tkt") || sub.Path() == n.Path() {
		t.Fatalf("subsidiary %+v %v", sub, err)
	}
	if fi, _ := os.Stat(sub.Path()); fi.Mode().Perm() != 0o600 {
		t.Errorf("subsidiary mode %v", fi.Mode())
	}
	if err := sub.SetPrimary(); err != nil {
		t.Fatal(err)
	}
	again, err := ParseCacheName("DIR:"+dir, SourceEnv)
	if err != nil || again.Path() != sub.Path() {
		t.Errorf("primary not followed: %+v %v", again, err)
	}
	one, err := ParseCacheName("DIR::"+sub.Path(), SourceFlag)
	if err != nil || one.Path() != sub.Path() || one.Dir() != dir {
		t.Errorf("DIR:: form: %+v %v", one, err)
	}

	// A primary file MIT would reject is an error, not a path outside.
	for _, bad := range []string{"../../etc/passwd\n", "tkt/../x\n", "nonewline", "other\n"} {
		os.WriteFile(filepath.Join(dir, "primary"), []byte(bad), 0o600)
		if n, err := ParseCacheName("DIR:"+dir, SourceFlag); err == nil {
			t.Errorf("primary %q accepted: %s", bad, n.Path())
		}
	}
	// A file where the directory should be.
	f := filepath.Join(base, "file")
	os.WriteFile(f, nil, 0o600)
	if _, err := ParseCacheName("DIR:"+f, SourceFlag); err == nil {
		t.Error("DIR: on a regular file accepted")
	}
	if _, err := ParseCacheName("DIR:"+filepath.Join(base, "no", "such"), SourceFlag); err == nil {
		t.Error("DIR: with a missing parent accepted (MIT creates one level only)")
	}
	if err := (CacheName{Type: "FILE"}).SetPrimary(); err != nil {
		t.Errorf("SetPrimary on FILE: %v", err)
	}
}
